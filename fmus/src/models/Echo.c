/* Echo: its outputs are its inputs, yu = u (continuous) and yk = k (discrete), so a recorded
 * output shows exactly the input value the FMU was given. For the tests of input signals
 * (steps), not part of the built-in library. The state x, der(x) = u, gives Model Exchange
 * something to integrate. */
#include "model.h"

enum { VR_TIME, VR_U, VR_K, VR_X, VR_DER_X, VR_YU, VR_YK, N_VARS };

static const VarSpec vars[N_VARS] = {
    [VR_TIME] = {"time", K_TIME, 0},
    [VR_U] = {"u", K_INPUT_CONTINUOUS, 0},
    [VR_K] = {"k", K_INPUT_DISCRETE, 0},
    [VR_X] = {"x", K_STATE, 0},
    [VR_DER_X] = {"der(x)", K_DERIVATIVE, 0},
    [VR_YU] = {"yu", K_OUTPUT_CALCULATED, 0},
    [VR_YK] = {"yk", K_OUTPUT_CALCULATED, 0},
};

static const unsigned states[] = {VR_X};
static const unsigned derivatives_vrs[] = {VR_DER_X};

static void derivatives(const ModelData *d, double t, const double *x, double *dx) {
    (void)t;
    (void)x;
    dx[0] = d->v[VR_U];
}

static void outputs(ModelData *d) {
    d->v[VR_YU] = d->v[VR_U];
    d->v[VR_YK] = d->v[VR_K];
}

const ModelDef MODEL = {
    .name = "Echo",
    .n_vars = N_VARS,
    .vars = vars,
    .nx = 1,
    .state_vrs = states,
    .derivative_vrs = derivatives_vrs,
    .nz = 0,
    .breach_vr = -1,
    .derivatives = derivatives,
    .outputs = outputs,
};
