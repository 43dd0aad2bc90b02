/* Integrator: integrates a gained input, der(x) = k*u, with output y = x.
 * u is a continuous input, k a discrete input (changes only at events / communication points).
 * In Co-Simulation both are held at the values set before fmi3DoStep / fmi2DoStep. */
#include "model.h"

enum { VR_TIME, VR_U, VR_K, VR_X, VR_DER_X, VR_Y, N_VARS };

static const VarSpec vars[N_VARS] = {
    [VR_TIME] = {"time", K_TIME, 0},
    [VR_U] = {"u", K_INPUT_CONTINUOUS, 0},
    [VR_K] = {"k", K_INPUT_DISCRETE, 1},
    [VR_X] = {"x", K_STATE, 0},
    [VR_DER_X] = {"der(x)", K_DERIVATIVE, 0},
    [VR_Y] = {"y", K_OUTPUT_CALCULATED, 0},
};

static const unsigned states[] = {VR_X};
static const unsigned derivatives_vrs[] = {VR_DER_X};

static void derivatives(const ModelData *d, double t, const double *x, double *dx) {
    (void)t;
    (void)x;
    dx[0] = d->v[VR_K] * d->v[VR_U];
}

static void outputs(ModelData *d) { d->v[VR_Y] = d->v[VR_X]; }

const ModelDef MODEL = {
    .name = "Integrator",
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
