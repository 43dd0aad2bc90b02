/* Dahlquist: the test equation der(x) = -k*x, with x(t) = x(0)*exp(-k*t).
 * Compiled with one of the HOSTILE_* defines it becomes the "Hostile" sandbox test model, which
 * has an extra output `breach` (see model_hostile in model.c). */
#include "model.h"

enum {
    VR_TIME,
    VR_X,
    VR_DER_X,
    VR_K,
#ifdef FGW_HOSTILE
    VR_BREACH,
#endif
    N_VARS
};

static const VarSpec vars[N_VARS] = {
    [VR_TIME] = {"time", K_TIME, 0},
    [VR_X] = {"x", K_STATE, 1},
    [VR_DER_X] = {"der(x)", K_DERIVATIVE, 0},
    [VR_K] = {"k", K_PARAMETER_FIXED, 1},
#ifdef FGW_HOSTILE
    [VR_BREACH] = {"breach", K_OUTPUT_FLAG, 0},
#endif
};

static const unsigned states[] = {VR_X};
static const unsigned derivatives_vrs[] = {VR_DER_X};

static void derivatives(const ModelData *d, double t, const double *x, double *dx) {
    (void)t;
    dx[0] = -d->v[VR_K] * x[0];
}

const ModelDef MODEL = {
#ifdef FGW_HOSTILE
    .name = "Hostile",
    .breach_vr = VR_BREACH,
#else
    .name = "Dahlquist",
    .breach_vr = -1,
#endif
    .n_vars = N_VARS,
    .vars = vars,
    .nx = 1,
    .state_vrs = states,
    .derivative_vrs = derivatives_vrs,
    .nz = 0,
    .derivatives = derivatives,
};
