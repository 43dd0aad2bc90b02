/* StateSpace: a linear system
 *   der(x) = A x + B u,  y = C x + D u,  x(0) = x0
 * with m inputs, n states and r outputs. FMI 3.0: m, n and r are structural parameters
 * (UInt64, 1 to 16, default 3) and A, B, C, D, x0, u, y, x and der(x) are arrays sized by them;
 * changing them in Configuration Mode resizes every array, which then takes the default
 * values below for the new sizes. FMI 2.0: the same model at the default sizes, flattened to
 * scalars (x[1], A[1,1], ...), whose value references follow each other row by row so that
 * the same code reads both.
 *
 * Defaults with a closed form: A upper triangular with diagonal -1, -2, ..., -n (distinct
 * eigenvalues) and one coupling A[1,2] = 0.5; B, C identity (where they have a diagonal);
 * D = 0; x0 = 1, 2, ..., n; u = 0. */
#include "model.h"

#include <string.h>

#define MAX_SIZE 16

#ifdef FGW_FMI2

#define M_ 3
#define N_ 3
#define R_ 3
enum {
    VR_TIME,
    VR_A = 1,                /* A[1,1] .. A[3,3] */
    VR_B = VR_A + N_ * N_,   /* B[1,1] .. B[3,3] */
    VR_C = VR_B + N_ * M_,
    VR_D = VR_C + R_ * N_,
    VR_X0 = VR_D + R_ * M_,
    VR_U = VR_X0 + N_,
    VR_Y = VR_U + M_,
    VR_X = VR_Y + R_,
    VR_DER_X = VR_X + N_,
    N_VARS = VR_DER_X + N_
};
#define SIZE_M(d) ((size_t)M_)
#define SIZE_N(d) ((size_t)N_)
#define SIZE_R(d) ((size_t)R_)

#define P(name) {name, K_PARAMETER_FIXED, 0}
#define ROW3(p, i) P(p "[" #i ",1]"), P(p "[" #i ",2]"), P(p "[" #i ",3]")
static const VarSpec vars[N_VARS] = {
    {"time", K_TIME, 0},
    ROW3("A", 1), ROW3("A", 2), ROW3("A", 3),
    ROW3("B", 1), ROW3("B", 2), ROW3("B", 3),
    ROW3("C", 1), ROW3("C", 2), ROW3("C", 3),
    ROW3("D", 1), ROW3("D", 2), ROW3("D", 3),
    P("x0[1]"), P("x0[2]"), P("x0[3]"),
    {"u[1]", K_INPUT_CONTINUOUS, 0}, {"u[2]", K_INPUT_CONTINUOUS, 0},
    {"u[3]", K_INPUT_CONTINUOUS, 0},
    {"y[1]", K_OUTPUT_CALCULATED, 0}, {"y[2]", K_OUTPUT_CALCULATED, 0},
    {"y[3]", K_OUTPUT_CALCULATED, 0},
    {"x[1]", K_STATE_CALCULATED, 0}, {"x[2]", K_STATE_CALCULATED, 0},
    {"x[3]", K_STATE_CALCULATED, 0},
    {"der(x[1])", K_DERIVATIVE, 0}, {"der(x[2])", K_DERIVATIVE, 0},
    {"der(x[3])", K_DERIVATIVE, 0},
};

static const unsigned states[] = {VR_X, VR_X + 1, VR_X + 2};
static const unsigned derivatives_vrs[] = {VR_DER_X, VR_DER_X + 1, VR_DER_X + 2};
#define N_STATE_VARS 3

#else

enum { VR_TIME, VR_M, VR_N, VR_R, VR_A, VR_B, VR_C, VR_D, VR_X0, VR_U, VR_Y, VR_X, VR_DER_X, N_VARS };
#define SIZE_M(d) ((size_t)(d)->u[VR_M])
#define SIZE_N(d) ((size_t)(d)->u[VR_N])
#define SIZE_R(d) ((size_t)(d)->u[VR_R])

#define STRUCTURAL(name) {name, K_STRUCTURAL, 3, T_UINT64, .bounded = true, .min = 1, .max = MAX_SIZE}
static const VarSpec vars[N_VARS] = {
    [VR_TIME] = {"time", K_TIME, 0},
    [VR_M] = STRUCTURAL("m"),
    [VR_N] = STRUCTURAL("n"),
    [VR_R] = STRUCTURAL("r"),
    [VR_A] = {"A", K_PARAMETER_FIXED, .dims = {VR_N, VR_N}},
    [VR_B] = {"B", K_PARAMETER_FIXED, .dims = {VR_N, VR_M}},
    [VR_C] = {"C", K_PARAMETER_FIXED, .dims = {VR_R, VR_N}},
    [VR_D] = {"D", K_PARAMETER_FIXED, .dims = {VR_R, VR_M}},
    [VR_X0] = {"x0", K_PARAMETER_FIXED, .dims = {VR_N}},
    [VR_U] = {"u", K_INPUT_CONTINUOUS, .dims = {VR_M}},
    [VR_Y] = {"y", K_OUTPUT_CALCULATED, .dims = {VR_R}},
    [VR_X] = {"x", K_STATE_CALCULATED, .dims = {VR_N}},
    [VR_DER_X] = {"der(x)", K_DERIVATIVE, .dims = {VR_N}},
};

static const unsigned states[] = {VR_X};
static const unsigned derivatives_vrs[] = {VR_DER_X};
#define N_STATE_VARS 1

#endif

/* The defaults for the current sizes (see the top of the file). */
static void configure(ModelData *d) {
    const size_t m = SIZE_M(d), n = SIZE_N(d), r = SIZE_R(d);
    double *a = model_values(d, VR_A), *b = model_values(d, VR_B);
    double *c = model_values(d, VR_C), *dd = model_values(d, VR_D);
    double *x0 = model_values(d, VR_X0), *u = model_values(d, VR_U);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) a[i * n + j] = i == j ? -(double)(i + 1) : 0;
        for (size_t j = 0; j < m; j++) b[i * m + j] = i == j;
        x0[i] = (double)(i + 1);
    }
    if (n > 1) a[1] = 0.5;
    for (size_t i = 0; i < r; i++) {
        for (size_t j = 0; j < n; j++) c[i * n + j] = i == j;
        for (size_t j = 0; j < m; j++) dd[i * m + j] = 0;
    }
    for (size_t j = 0; j < m; j++) u[j] = 0;
}

/* x = x0 until initialization ends. */
static void initialize(ModelData *d) {
    memcpy(model_values(d, VR_X), model_values(d, VR_X0), SIZE_N(d) * sizeof(double));
}

/* out = P v + Q w for row-major P (rows × cols_v) and Q (rows × cols_w). */
static void affine(size_t rows, const double *p, const double *v, size_t cols_v, const double *q,
                   const double *w, size_t cols_w, double *out) {
    for (size_t i = 0; i < rows; i++) {
        double sum = 0;
        for (size_t j = 0; j < cols_v; j++) sum += p[i * cols_v + j] * v[j];
        for (size_t j = 0; j < cols_w; j++) sum += q[i * cols_w + j] * w[j];
        out[i] = sum;
    }
}

static void derivatives(const ModelData *d, double t, const double *x, double *dx) {
    (void)t;
    ModelData *data = (ModelData *)d; /* model_values only computes an address */
    affine(SIZE_N(d), model_values(data, VR_A), x, SIZE_N(d), model_values(data, VR_B),
           model_values(data, VR_U), SIZE_M(d), dx);
}

static void outputs(ModelData *d) {
    affine(SIZE_R(d), model_values(d, VR_C), model_values(d, VR_X), SIZE_N(d),
           model_values(d, VR_D), model_values(d, VR_U), SIZE_M(d), model_values(d, VR_Y));
}

const ModelDef MODEL = {
    .name = "StateSpace",
    .n_vars = N_VARS,
    .vars = vars,
    .nx = N_STATE_VARS,
    .state_vrs = states,
    .derivative_vrs = derivatives_vrs,
    .nz = 0,
    .breach_vr = -1,
    .derivatives = derivatives,
    .outputs = outputs,
    .configure = configure,
    .initialize = initialize,
};
