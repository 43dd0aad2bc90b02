/* BouncingBall: a ball dropped from height h that bounces with coefficient of restitution e.
 *   der(h) = v, der(v) = -g; event indicator h; when h reaches 0 falling: v := -e*v.
 * Once a bounce would send the ball up slower than V_MIN it comes to rest on the floor, so the
 * infinite sequence of ever smaller bounces (Zeno behaviour) does not make solvers chatter. */
#include "model.h"

#include <stdio.h>

enum { VR_TIME, VR_H, VR_DER_H, VR_V, VR_DER_V, VR_G, VR_E, N_VARS };

#define V_MIN 0.1    /* m/s: slower rebounds (apex below 0.5 mm) leave the ball resting */
#define RESTING 0    /* index into ModelData.internal */

static const VarSpec vars[N_VARS] = {
    [VR_TIME] = {"time", K_TIME, 0},
    [VR_H] = {"h", K_STATE, 1},
    [VR_DER_H] = {"der(h)", K_DERIVATIVE, 0},
    [VR_V] = {"v", K_STATE, 0},
    [VR_DER_V] = {"der(v)", K_DERIVATIVE, 0},
    [VR_G] = {"g", K_PARAMETER_FIXED, 9.81},
    [VR_E] = {"e", K_PARAMETER_TUNABLE, 0.7},
};

static const unsigned states[] = {VR_H, VR_V};
static const unsigned derivatives_vrs[] = {VR_DER_H, VR_DER_V};

static void derivatives(const ModelData *d, double t, const double *x, double *dx) {
    (void)t;
    if (d->internal[RESTING] != 0) {
        dx[0] = 0;
        dx[1] = 0;
    } else {
        dx[0] = x[1];
        dx[1] = -d->v[VR_G];
    }
}

static void event_indicators(const ModelData *d, double t, const double *x, double *z) {
    (void)d;
    (void)t;
    z[0] = x[0];
}

static bool on_event(ModelData *d, char *message, size_t size) {
    if (d->internal[RESTING] != 0 || d->v[VR_H] > 0 || d->v[VR_V] >= 0) return false;
    const double impact = d->v[VR_V];
    d->v[VR_H] = 0;
    d->v[VR_V] = -d->v[VR_E] * impact;
    if (d->v[VR_V] < V_MIN) {
        d->v[VR_V] = 0;
        d->internal[RESTING] = 1;
        snprintf(message, size, "ball comes to rest (impact speed %g m/s)", -impact);
    } else {
        snprintf(message, size, "bounce: v %g -> %g m/s", impact, d->v[VR_V]);
    }
    return true;
}

const ModelDef MODEL = {
    .name = "BouncingBall",
    .n_vars = N_VARS,
    .vars = vars,
    .nx = 2,
    .state_vrs = states,
    .derivative_vrs = derivatives_vrs,
    .nz = 1,
    .breach_vr = -1,
    .derivatives = derivatives,
    .event_indicators = event_indicators,
    .on_event = on_event,
    .outputs = NULL,
};
