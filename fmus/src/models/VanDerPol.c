/* VanDerPol: the Van der Pol oscillator.
 *   der(x0) = x1, der(x1) = mu*(1 - x0^2)*x1 - x0 */
#include "model.h"

enum { VR_TIME, VR_X0, VR_DER_X0, VR_X1, VR_DER_X1, VR_MU, N_VARS };

static const VarSpec vars[N_VARS] = {
    [VR_TIME] = {"time", K_TIME, 0},
    [VR_X0] = {"x0", K_STATE, 2},
    [VR_DER_X0] = {"der(x0)", K_DERIVATIVE, 0},
    [VR_X1] = {"x1", K_STATE, 0},
    [VR_DER_X1] = {"der(x1)", K_DERIVATIVE, 0},
    [VR_MU] = {"mu", K_PARAMETER_FIXED, 1},
};

static const unsigned states[] = {VR_X0, VR_X1};
static const unsigned derivatives_vrs[] = {VR_DER_X0, VR_DER_X1};

static void derivatives(const ModelData *d, double t, const double *x, double *dx) {
    (void)t;
    dx[0] = x[1];
    dx[1] = d->v[VR_MU] * (1 - x[0] * x[0]) * x[1] - x[0];
}

const ModelDef MODEL = {
    .name = "VanDerPol",
    .n_vars = N_VARS,
    .vars = vars,
    .nx = 2,
    .state_vrs = states,
    .derivative_vrs = derivatives_vrs,
    .nz = 0,
    .breach_vr = -1,
    .derivatives = derivatives,
};
