/* Robertson: Robertson's stiff chemical kinetics (1966), the classic stiff test problem.
 *   der(y1) = -k1*y1 + k3*y2*y3
 *   der(y2) =  k1*y1 - k3*y2*y3 - k2*y2^2
 *   der(y3) =  k2*y2^2
 * with y = (1, 0, 0), k1 = 0.04, k2 = 3e7, k3 = 1e4. Its eigenvalues span from about -0.04
 * to about -1e4 (and far beyond for large t), so an explicit method is held to tiny steps:
 * the model declares itself stiff and the Co-Simulation core integrates it implicitly. */
#include "model.h"

enum { VR_TIME, VR_Y1, VR_DER_Y1, VR_Y2, VR_DER_Y2, VR_Y3, VR_DER_Y3, VR_K1, VR_K2, VR_K3, N_VARS };

static const VarSpec vars[N_VARS] = {
    [VR_TIME] = {"time", K_TIME, 0},
    [VR_Y1] = {"y1", K_STATE, 1},
    [VR_DER_Y1] = {"der(y1)", K_DERIVATIVE, 0},
    [VR_Y2] = {"y2", K_STATE, 0},
    [VR_DER_Y2] = {"der(y2)", K_DERIVATIVE, 0},
    [VR_Y3] = {"y3", K_STATE, 0},
    [VR_DER_Y3] = {"der(y3)", K_DERIVATIVE, 0},
    [VR_K1] = {"k1", K_PARAMETER_FIXED, 0.04},
    [VR_K2] = {"k2", K_PARAMETER_FIXED, 3e7},
    [VR_K3] = {"k3", K_PARAMETER_FIXED, 1e4},
};

static const unsigned states[] = {VR_Y1, VR_Y2, VR_Y3};
static const unsigned derivatives_vrs[] = {VR_DER_Y1, VR_DER_Y2, VR_DER_Y3};

static void derivatives(const ModelData *d, double t, const double *x, double *dx) {
    (void)t;
    const double k1 = d->v[VR_K1], k2 = d->v[VR_K2], k3 = d->v[VR_K3];
    const double slow = k1 * x[0], fast = k3 * x[1] * x[2], growth = k2 * x[1] * x[1];
    dx[0] = -slow + fast;
    dx[1] = slow - fast - growth;
    dx[2] = growth;
}

const ModelDef MODEL = {
    .name = "Robertson",
    .n_vars = N_VARS,
    .vars = vars,
    .nx = 3,
    .state_vrs = states,
    .derivative_vrs = derivatives_vrs,
    .nz = 0,
    .breach_vr = -1,
    .stiff = true,
    .derivatives = derivatives,
};
