/* Shared core of the FMU Gateway demo models: see model.h. */
#include "model.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FGW_HOSTILE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <dirent.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#endif

/* Co-Simulation: largest internal RK4 step, and the width to which events are located. */
#define MAX_SUBSTEP 1e-3
#define EVENT_TIME_RESOLUTION 1e-12
#define MAX_EVENTS_PER_STEP 10000

static const char *mode_name(Mode mode) {
    switch (mode) {
    case MODE_INSTANTIATED: return "Instantiated";
    case MODE_INITIALIZATION: return "Initialization Mode";
    case MODE_EVENT: return "Event Mode";
    case MODE_CONTINUOUS_TIME: return "Continuous-Time Mode";
    case MODE_STEP: return "Step Mode";
    case MODE_TERMINATED: return "Terminated";
    case MODE_CONFIGURATION: return "Configuration Mode";
    }
    return "?";
}

/* The <LogCategories> every model declares (build_support.rs writes them), in bit order. */
static const char *const LOG_CATEGORIES[] = {"logEvents", "logStatusWarning", "logStatusError"};
#define N_LOG_CATEGORIES (sizeof LOG_CATEGORIES / sizeof LOG_CATEGORIES[0])
#define ALL_LOG_CATEGORIES ((1u << N_LOG_CATEGORIES) - 1)

static int log_category(const char *name) {
    for (size_t k = 0; k < N_LOG_CATEGORIES; k++)
        if (name && strcmp(name, LOG_CATEGORIES[k]) == 0) return (int)k;
    return -1;
}

Status model_set_debug_logging(Instance *m, bool logging_on, size_t n, const char *const names[]) {
    if (n == 0) {
        m->logging_on = logging_on;
        m->log_categories = ALL_LOG_CATEGORIES;
        return ST_OK;
    }
    if (!names) return ST_ERROR;
    unsigned chosen = 0;
    for (size_t i = 0; i < n; i++) {
        const int k = log_category(names[i]);
        if (k < 0) {
            model_log(m, ST_ERROR, "logStatusError", "SetDebugLogging: unknown log category \"%s\".",
                      names[i] ? names[i] : "(null)");
            return ST_ERROR;
        }
        chosen |= 1u << k;
    }
    /* Named categories go on (or off); the others keep their state, so from "all off" the
       named ones are the only ones on. */
    const unsigned before = m->logging_on ? m->log_categories : 0;
    m->log_categories = logging_on ? (before | chosen) : (before & ~chosen);
    m->logging_on = m->log_categories != 0;
    return ST_OK;
}

/* Errors and warnings are always logged (a failure must explain itself); OK-status messages
   only with logging on, for an enabled category. */
void model_log(Instance *m, Status status, const char *category, const char *fmt, ...) {
    if (!m || !m->log) return;
    if (status == ST_OK) {
        const int k = log_category(category);
        const bool enabled = k < 0 || (m->log_categories >> k & 1u);
        if (!m->logging_on || !enabled) return;
    }
    char message[1024];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    m->log(m, status, category, message);
}

bool model_check_mode(Instance *m, const char *function, unsigned allowed) {
    if (allowed & M(m->d.mode)) return true;
    model_log(m, ST_ERROR, "logStatusError", "%s must not be called in %s.", function,
              mode_name(m->d.mode));
    return false;
}

static bool is_float(VarType type);
static bool is_unsigned(VarType type);
static bool is_text(VarType type);

/* ---------------------------------------------------------------- states and derived values */

size_t model_size(const ModelData *d, unsigned vr) {
    size_t size = 1;
    for (int k = 0; k < 2; k++) {
        const unsigned dim = MODEL.vars[vr].dims[k];
        if (dim) size *= (size_t)d->u[dim];
    }
    return size;
}

static bool is_array(unsigned vr) { return MODEL.vars[vr].dims[0] != 0; }

double *model_values(ModelData *d, unsigned vr) {
    if (!is_array(vr)) return &d->v[vr];
    size_t offset = 0;
    for (unsigned k = 0; k < vr; k++)
        if (is_array(k)) offset += model_size(d, k);
    return &d->array[offset];
}

/* All arrays together, for the capacity check when the structural parameters change. */
static size_t array_values(const ModelData *d) {
    size_t total = 0;
    for (unsigned vr = 0; vr < MODEL.n_vars; vr++)
        if (is_array(vr)) total += model_size(d, vr);
    return total;
}

size_t model_nx(const ModelData *d) {
    size_t nx = 0;
    for (size_t i = 0; i < MODEL.nx; i++) nx += model_size(d, MODEL.state_vrs[i]);
    return nx;
}

/* Copies between the state variables (in order, arrays element by element) and x. */
static void read_states(const ModelData *d, double *x) {
    for (size_t i = 0; i < MODEL.nx; i++) {
        const unsigned vr = MODEL.state_vrs[i];
        const size_t size = model_size(d, vr);
        memcpy(x, model_values((ModelData *)d, vr), size * sizeof *x);
        x += size;
    }
}

static void write_vars(ModelData *d, const unsigned *vrs, const double *x) {
    for (size_t i = 0; i < MODEL.nx; i++) {
        const size_t size = model_size(d, vrs[i]);
        memcpy(model_values(d, vrs[i]), x, size * sizeof *x);
        x += size;
    }
}

static void write_states(ModelData *d, const double *x) { write_vars(d, MODEL.state_vrs, x); }

/* Recomputes time, derivatives and calculated outputs from the current states (and, until
   initialization ends, the states the model calculates from its parameters). */
static void refresh(ModelData *d) {
    double x[MAX_STATES] = {0}, dx[MAX_STATES] = {0};
    d->v[0] = d->time;
    const bool initializing = d->mode == MODE_INSTANTIATED || d->mode == MODE_INITIALIZATION ||
                              d->mode == MODE_CONFIGURATION;
    if (initializing && MODEL.initialize) MODEL.initialize(d);
    read_states(d, x);
    if (MODEL.nx > 0) MODEL.derivatives(d, d->time, x, dx);
    write_vars(d, MODEL.derivative_vrs, dx);
    if (MODEL.outputs) MODEL.outputs(d);
}

static void indicators(const ModelData *d, double t, const double *x, double *z) {
    if (MODEL.nz > 0) MODEL.event_indicators(d, t, x, z);
}

/* Applies the model's event reset; returns true if a continuous state changed. */
static bool apply_event(Instance *m) {
    if (!MODEL.on_event) return false;
    char message[256] = "";
    bool changed = MODEL.on_event(&m->d, message, sizeof message);
    if (message[0]) model_log(m, ST_OK, "logEvents", "t=%.12g: %s", m->d.time, message);
    refresh(&m->d);
    return changed;
}

/* ------------------------------------------------------------------------------- lifecycle */

/* Gives variable `vr` its start value from the model's table. */
static void set_start(ModelData *d, unsigned vr) {
    const VarSpec *var = &MODEL.vars[vr];
    if (is_array(vr)) {
        return; /* the model's configure gives arrays their start values */
    } else if (is_float(var->type)) {
        d->v[vr] = var->start;
    } else if (is_unsigned(var->type)) {
        d->u[vr] = (uint64_t)var->start;
    } else if (is_text(var->type)) {
        Text *text = model_text(d, vr);
        const char *start = var->start_text ? var->start_text : "";
        text->size = var->type == T_STRING ? strlen(start) + 1 : var->start_size;
        memcpy(text->bytes, start, text->size);
    } else {
        d->i[vr] = (int64_t)var->start;
    }
}

void model_reset(Instance *m) {
    memset(&m->d, 0, sizeof m->d);
    for (unsigned vr = 0; vr < MODEL.n_vars; vr++) set_start(&m->d, vr);
    if (MODEL.configure) MODEL.configure(&m->d);
    m->d.mode = MODE_INSTANTIATED;
    m->last_successful_time = 0;
    refresh(&m->d);
}

Instance *model_new(const char *instance_name, Interface interface, bool logging_on,
                    LogFunction log, void *glue) {
    size_t texts = 0;
    for (unsigned vr = 0; vr < MODEL.n_vars; vr++) texts += is_text(MODEL.vars[vr].type);
    if (MODEL.n_vars > MAX_VARS || texts > MAX_TEXTS) return NULL; /* a table too big */
    Instance *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    const char *name = instance_name ? instance_name : "";
    m->instance_name = malloc(strlen(name) + 1);
    if (!m->instance_name) {
        free(m);
        return NULL;
    }
    strcpy(m->instance_name, name);
    m->interface = interface;
    m->logging_on = logging_on;
    m->log_categories = ALL_LOG_CATEGORIES;
    m->log = log;
    m->glue = glue;
    model_reset(m);
    return m;
}

void model_free(Instance *m) {
    if (!m) return;
    free(m->instance_name);
    free(m->glue);
    free(m);
}

/* ------------------------------------------------------------------------ variable access */

static const char *type_name(VarType type) {
    switch (type) {
    case T_FLOAT64: return "Float64";
    case T_FLOAT32: return "Float32";
    case T_INT8: return "Int8";
    case T_UINT8: return "UInt8";
    case T_INT16: return "Int16";
    case T_UINT16: return "UInt16";
    case T_INT32: return "Int32";
    case T_UINT32: return "UInt32";
    case T_INT64: return "Int64";
    case T_UINT64: return "UInt64";
    case T_BOOLEAN: return "Boolean";
    case T_STRING: return "String";
    case T_BINARY: return "Binary";
    case T_ENUMERATION: return "Enumeration";
    }
    return "?";
}

static bool is_float(VarType type) { return type == T_FLOAT64 || type == T_FLOAT32; }

static bool is_unsigned(VarType type) {
    return type == T_UINT8 || type == T_UINT16 || type == T_UINT32 || type == T_UINT64;
}

static bool is_text(VarType type) { return type == T_STRING || type == T_BINARY; }

Text *model_text(ModelData *d, unsigned vr) {
    size_t slot = 0;
    for (unsigned k = 0; k < vr; k++) slot += is_text(MODEL.vars[k].type);
    return &d->text[slot];
}

void model_copy_value(ModelData *d, unsigned from, unsigned to) {
    const VarType type = MODEL.vars[from].type;
    if (is_float(type)) {
        d->v[to] = d->v[from];
    } else if (is_unsigned(type)) {
        d->u[to] = d->u[from];
    } else if (is_text(type)) {
        *model_text(d, to) = *model_text(d, from);
    } else {
        d->i[to] = d->i[from];
    }
}

static bool check_vr(Instance *m, const char *function, unsigned vr) {
    if (vr < MODEL.n_vars) return true;
    model_log(m, ST_ERROR, "logStatusError", "%s: unknown value reference %u.", function, vr);
    return false;
}

/* The variable exists and `function`, which handles `type`, may access it. */
static bool check_type(Instance *m, const char *function, VarType type, unsigned vr) {
    if (!check_vr(m, function, vr)) return false;
    const VarType actual = MODEL.vars[vr].type;
    if (actual == type || (actual == T_ENUMERATION && type == ENUMERATION_CARRIER)) return true;
    model_log(m, ST_ERROR, "logStatusError",
              "%s: variable %s (value reference %u) is of type %s, not %s.", function,
              MODEL.vars[vr].name, vr, type_name(actual), type_name(type));
    return false;
}

Status model_reject_vrs(Instance *m, const char *function, const unsigned *vrs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (check_vr(m, function, vrs[i])) {
            model_log(m, ST_ERROR, "logStatusError",
                      "%s: variable %s (value reference %u) does not have this type.", function,
                      MODEL.vars[vrs[i]].name, vrs[i]);
        }
        return ST_ERROR;
    }
    return ST_OK;
}

/* Elements of the variables together (value references already checked). */
static size_t element_count(Instance *m, const unsigned *vrs, size_t nvr) {
    size_t n = 0;
    for (size_t k = 0; k < nvr; k++) n += model_size(&m->d, vrs[k]);
    return n;
}

static bool check_count(Instance *m, const char *function, size_t given, size_t expected);

Status model_get_value(Instance *m, const char *function, VarType type, unsigned vr,
                       Value *value) {
    if (!check_type(m, function, type, vr)) return ST_ERROR;
    const VarType actual = MODEL.vars[vr].type;
    if (is_float(actual)) {
        value->f = m->d.v[vr];
    } else if (is_unsigned(actual)) {
        value->u = m->d.u[vr];
    } else if (is_text(actual)) {
        const Text *text = model_text(&m->d, vr);
        value->text.bytes = text->bytes;
        value->text.size = text->size;
    } else {
        value->i = m->d.i[vr];
    }
    return ST_OK;
}

Status model_get_float(Instance *m, const unsigned *vrs, size_t n, double *values) {
    if (n > 0 && (!vrs || !values)) return ST_ERROR;
    refresh(&m->d);
    for (size_t i = 0; i < n; i++) {
        Value value;
        if (model_get_value(m, "get", T_FLOAT64, vrs[i], &value) != ST_OK) return ST_ERROR;
        values[i] = value.f;
    }
    return ST_OK;
}

Status model_get_float64(Instance *m, const unsigned *vrs, size_t nvr, double *values,
                         size_t n_values) {
    if (nvr > 0 && (!vrs || !values)) return ST_ERROR;
    for (size_t k = 0; k < nvr; k++)
        if (!check_type(m, "fmi3GetFloat64", T_FLOAT64, vrs[k])) return ST_ERROR;
    if (!check_count(m, "fmi3GetFloat64", n_values, element_count(m, vrs, nvr))) return ST_ERROR;
    refresh(&m->d);
    size_t at = 0;
    for (size_t k = 0; k < nvr; k++) {
        const size_t size = model_size(&m->d, vrs[k]);
        memcpy(values + at, model_values(&m->d, vrs[k]), size * sizeof *values);
        at += size;
    }
    return ST_OK;
}

Status model_set_float64(Instance *m, const unsigned *vrs, size_t nvr, const double *values,
                         size_t n_values) {
    if (nvr > 0 && (!vrs || !values)) return ST_ERROR;
    /* check everything first so that a failing call changes nothing */
    for (size_t k = 0; k < nvr; k++)
        if (!check_type(m, "fmi3SetFloat64", T_FLOAT64, vrs[k])) return ST_ERROR;
    if (!check_count(m, "fmi3SetFloat64", n_values, element_count(m, vrs, nvr))) return ST_ERROR;
    size_t at = 0;
    for (size_t k = 0; k < nvr; k++) {
        const size_t size = model_size(&m->d, vrs[k]);
        for (size_t e = 0; e < size; e++) {
            Value value = {.f = values[at + e]};
            if (model_check_set(m, "fmi3SetFloat64", T_FLOAT64, vrs[k], value) != ST_OK)
                return ST_ERROR;
        }
        at += size;
    }
    at = 0;
    for (size_t k = 0; k < nvr; k++) {
        const size_t size = model_size(&m->d, vrs[k]);
        memcpy(model_values(&m->d, vrs[k]), values + at, size * sizeof *values);
        at += size;
    }
    refresh(&m->d);
    return ST_OK;
}

static unsigned settable_modes(VarKind kind) {
    switch (kind) {
    case K_PARAMETER_FIXED:
    case K_STATE: return M(MODE_INSTANTIATED) | M(MODE_INITIALIZATION);
    case K_PARAMETER_TUNABLE:
    case K_INPUT_DISCRETE:
        return M(MODE_INSTANTIATED) | M(MODE_INITIALIZATION) | M(MODE_EVENT) | M(MODE_STEP);
    case K_INPUT_CONTINUOUS:
        return M(MODE_INSTANTIATED) | M(MODE_INITIALIZATION) | M(MODE_EVENT) |
               M(MODE_CONTINUOUS_TIME) | M(MODE_STEP);
    case K_STRUCTURAL: return M(MODE_CONFIGURATION);
    default: return 0;
    }
}

/* The numeric value as a double, for the min/max check (exact for the bounds we declare). */
static double numeric(VarType type, Value value) {
    if (is_float(type)) return value.f;
    if (is_unsigned(type)) return (double)value.u;
    return (double)value.i;
}

/* A value the variable's declaration allows: finite, within min/max, a text that fits. */
static bool check_value(Instance *m, const VarSpec *var, Value value) {
    if (is_text(var->type)) {
        if (!value.text.bytes && (var->type == T_STRING || value.text.size > 0)) {
            model_log(m, ST_ERROR, "logStatusError", "Variable %s: the value is a null pointer.",
                      var->name);
            return false;
        }
        if (value.text.size > MAX_TEXT_SIZE) {
            model_log(m, ST_ERROR, "logStatusError",
                      "Variable %s: a value of %zu bytes exceeds this FMU's limit of %d bytes.",
                      var->name, value.text.size, MAX_TEXT_SIZE);
            return false;
        }
        return true;
    }
    if (is_float(var->type) && !isfinite(value.f)) {
        model_log(m, ST_ERROR, "logStatusError", "Value %g for variable %s is not finite.",
                  value.f, var->name);
        return false;
    }
    const double x = numeric(var->type, value);
    if (var->bounded && (x < var->min || x > var->max)) {
        model_log(m, ST_ERROR, "logStatusError",
                  "Value %.17g for variable %s is outside [%.17g, %.17g] (min, max).", x,
                  var->name, var->min, var->max);
        return false;
    }
    return true;
}

Status model_check_set(Instance *m, const char *function, VarType type, unsigned vr,
                       Value value) {
    if (!check_type(m, function, type, vr)) return ST_ERROR;
    const VarSpec *var = &MODEL.vars[vr];
    unsigned allowed = settable_modes(var->kind);
    if (allowed == 0) {
        model_log(m, ST_ERROR, "logStatusError",
                  "Variable %s (value reference %u) cannot be set.", var->name, vr);
        return ST_ERROR;
    }
    if (!(allowed & M(m->d.mode))) {
        model_log(m, ST_ERROR, "logStatusError",
                  "Variable %s (value reference %u) cannot be set in %s.", var->name, vr,
                  mode_name(m->d.mode));
        return ST_ERROR;
    }
    return check_value(m, var, value) ? ST_OK : ST_ERROR;
}

void model_store(Instance *m, unsigned vr, Value value) {
    const VarType type = MODEL.vars[vr].type;
    if (is_float(type)) {
        m->d.v[vr] = value.f;
    } else if (is_unsigned(type)) {
        m->d.u[vr] = value.u;
    } else if (is_text(type)) {
        Text *text = model_text(&m->d, vr);
        if (value.text.size > 0) memcpy(text->bytes, value.text.bytes, value.text.size);
        text->size = value.text.size;
    } else {
        m->d.i[vr] = value.i;
    }
}

void model_values_changed(Instance *m) { refresh(&m->d); }

Status model_set_float(Instance *m, const unsigned *vrs, size_t n, const double *values) {
    if (n > 0 && (!vrs || !values)) return ST_ERROR;
    /* check everything first so that a failing call changes nothing */
    for (size_t i = 0; i < n; i++) {
        if (model_check_set(m, "set", T_FLOAT64, vrs[i], (Value){.f = values[i]}) != ST_OK)
            return ST_ERROR;
    }
    for (size_t i = 0; i < n; i++) model_store(m, vrs[i], (Value){.f = values[i]});
    model_values_changed(m);
    return ST_OK;
}

/* ------------------------------------------------------------------------------------ modes */

static bool has_structural_parameters(void) {
    for (unsigned vr = 0; vr < MODEL.n_vars; vr++)
        if (MODEL.vars[vr].kind == K_STRUCTURAL) return true;
    return false;
}

Status model_enter_configuration(Instance *m) {
    if (!has_structural_parameters()) {
        model_log(m, ST_ERROR, "logStatusError",
                  "EnterConfigurationMode: this FMU has no structural parameters.");
        return ST_ERROR;
    }
    if (!model_check_mode(m, "EnterConfigurationMode", M(MODE_INSTANTIATED))) return ST_ERROR;
    m->d.mode = MODE_CONFIGURATION;
    return ST_OK;
}

/* The arrays take the start values for the new sizes (values set before are replaced). */
Status model_exit_configuration(Instance *m) {
    if (!model_check_mode(m, "ExitConfigurationMode", M(MODE_CONFIGURATION))) return ST_ERROR;
    if (array_values(&m->d) > MAX_ARRAY_VALUES || model_nx(&m->d) > MAX_STATES) {
        model_log(m, ST_ERROR, "logStatusError",
                  "ExitConfigurationMode: the structural parameters ask for %zu array elements "
                  "and %zu states; this FMU holds at most %d and %d.",
                  array_values(&m->d), model_nx(&m->d), MAX_ARRAY_VALUES, MAX_STATES);
        return ST_ERROR;
    }
    if (MODEL.configure) MODEL.configure(&m->d);
    m->d.mode = MODE_INSTANTIATED;
    refresh(&m->d);
    return ST_OK;
}

Status model_enter_initialization(Instance *m, double start_time) {
    if (!model_check_mode(m, "EnterInitializationMode", M(MODE_INSTANTIATED))) return ST_ERROR;
    m->d.time = start_time;
    m->last_successful_time = start_time;
    m->d.mode = MODE_INITIALIZATION;
    refresh(&m->d);
    return ST_OK;
}

Status model_exit_initialization(Instance *m) {
    if (!model_check_mode(m, "ExitInitializationMode", M(MODE_INITIALIZATION))) return ST_ERROR;
#ifdef FAIL_INITIALIZE
    /* A broken model for the tests: it never leaves initialization mode. */
    model_log(m, ST_ERROR, "logStatusError", "initialization failed on purpose (FAIL_INITIALIZE)");
    return ST_ERROR;
#endif
    if (m->interface == IF_CO_SIMULATION && !m->event_mode_used) {
        /* handle an event that holds at the start time (e.g. a ball started on the floor) */
        apply_event(m);
        m->d.mode = MODE_STEP;
    } else {
        m->d.mode = MODE_EVENT;
    }
    refresh(&m->d);
    return ST_OK;
}

Status model_enter_event_mode(Instance *m) {
    unsigned allowed = m->interface == IF_MODEL_EXCHANGE ? M(MODE_CONTINUOUS_TIME) | M(MODE_EVENT)
                                                         : M(MODE_STEP) | M(MODE_EVENT);
    if (!model_check_mode(m, "EnterEventMode", allowed)) return ST_ERROR;
    m->d.mode = MODE_EVENT;
    return ST_OK;
}

Status model_update_discrete_states(Instance *m, bool *values_changed) {
    if (!model_check_mode(m, "UpdateDiscreteStates", M(MODE_EVENT))) return ST_ERROR;
    m->d.pending_event = false;
    bool changed = apply_event(m);
    if (values_changed) *values_changed = changed;
    return ST_OK;
}

Status model_enter_continuous_time_mode(Instance *m) {
    if (m->interface != IF_MODEL_EXCHANGE) {
        model_log(m, ST_ERROR, "logStatusError",
                  "EnterContinuousTimeMode is only available in Model Exchange.");
        return ST_ERROR;
    }
    if (!model_check_mode(m, "EnterContinuousTimeMode", M(MODE_EVENT))) return ST_ERROR;
    m->d.mode = MODE_CONTINUOUS_TIME;
    return ST_OK;
}

Status model_enter_step_mode(Instance *m) {
    if (m->interface != IF_CO_SIMULATION) {
        model_log(m, ST_ERROR, "logStatusError",
                  "EnterStepMode is only available in Co-Simulation.");
        return ST_ERROR;
    }
    if (!model_check_mode(m, "EnterStepMode", M(MODE_EVENT) | M(MODE_STEP))) return ST_ERROR;
    m->d.mode = MODE_STEP;
    return ST_OK;
}

Status model_terminate(Instance *m) {
    m->d.mode = MODE_TERMINATED;
    return ST_OK;
}

/* ---------------------------------------------------------------------------- Model Exchange */

Status model_set_time(Instance *m, double t) {
    if (!model_check_mode(m, "SetTime",
                          M(MODE_INITIALIZATION) | M(MODE_EVENT) | M(MODE_CONTINUOUS_TIME)))
        return ST_ERROR;
    m->d.time = t;
    m->d.v[0] = t;
    return ST_OK;
}

static bool check_count(Instance *m, const char *function, size_t given, size_t expected) {
    if (given == expected) return true;
    model_log(m, ST_ERROR, "logStatusError", "%s: expected %zu values but got %zu.", function,
              expected, given);
    return false;
}

Status model_set_states(Instance *m, const double *x, size_t nx) {
    if (!model_check_mode(m, "SetContinuousStates", M(MODE_EVENT) | M(MODE_CONTINUOUS_TIME)))
        return ST_ERROR;
    if (!check_count(m, "SetContinuousStates", nx, model_nx(&m->d))) return ST_ERROR;
    if (nx > 0 && !x) return ST_ERROR;
    write_states(&m->d, x);
    return ST_OK;
}

Status model_get_states(Instance *m, double *x, size_t nx) {
    if (!check_count(m, "GetContinuousStates", nx, model_nx(&m->d))) return ST_ERROR;
    if (nx > 0 && !x) return ST_ERROR;
    read_states(&m->d, x);
    return ST_OK;
}

Status model_get_derivatives(Instance *m, double *dx, size_t nx) {
    if (!check_count(m, "GetContinuousStateDerivatives", nx, model_nx(&m->d))) return ST_ERROR;
    if (nx > 0 && !dx) return ST_ERROR;
    if (m->interface == IF_MODEL_EXCHANGE) {
        Status status = model_hostile(m);
        if (status != ST_OK) return status;
    }
    double x[MAX_STATES] = {0};
    read_states(&m->d, x);
    if (nx > 0) MODEL.derivatives(&m->d, m->d.time, x, dx);
    return ST_OK;
}

Status model_get_event_indicators(Instance *m, double *z, size_t nz) {
    if (!check_count(m, "GetEventIndicators", nz, MODEL.nz)) return ST_ERROR;
    if (nz > 0 && !z) return ST_ERROR;
    double x[MAX_STATES] = {0};
    read_states(&m->d, x);
    indicators(&m->d, m->d.time, x, z);
    return ST_OK;
}

Status model_get_nominals(Instance *m, double *nominals, size_t nx) {
    if (!check_count(m, "GetNominalsOfContinuousStates", nx, model_nx(&m->d))) return ST_ERROR;
    if (nx > 0 && !nominals) return ST_ERROR;
    for (size_t i = 0; i < nx; i++) nominals[i] = 1.0;
    return ST_OK;
}

/* ------------------------------------------------------------------------------ Co-Simulation */

/* One classical Runge-Kutta step of size h from (t, x0). */
static void rk4(const ModelData *d, double t, const double *x0, double h, double *x1) {
    double k1[MAX_STATES], k2[MAX_STATES], k3[MAX_STATES], k4[MAX_STATES], x[MAX_STATES];
    size_t n = model_nx(d);
    if (n == 0) return;
    MODEL.derivatives(d, t, x0, k1);
    for (size_t i = 0; i < n; i++) x[i] = x0[i] + 0.5 * h * k1[i];
    MODEL.derivatives(d, t + 0.5 * h, x, k2);
    for (size_t i = 0; i < n; i++) x[i] = x0[i] + 0.5 * h * k2[i];
    MODEL.derivatives(d, t + 0.5 * h, x, k3);
    for (size_t i = 0; i < n; i++) x[i] = x0[i] + h * k3[i];
    MODEL.derivatives(d, t + h, x, k4);
    for (size_t i = 0; i < n; i++)
        x1[i] = x0[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
}

/* An indicator crossed zero if it left a strictly positive or strictly negative value. */
static bool crossed(const double *z0, const double *z1) {
    for (size_t i = 0; i < MODEL.nz; i++) {
        if ((z0[i] > 0 && z1[i] <= 0) || (z0[i] < 0 && z1[i] >= 0)) return true;
    }
    return false;
}

/* ------------------------------------------------- Co-Simulation of stiff models (implicit) */

/* Tolerances of the stiff integrator: tight enough that a Co-Simulation result agrees with
   Model Exchange to well below 1e-4 relative, on states down to ~1e-6 (Robertson's y2). */
#define STIFF_RTOL 1e-8
#define STIFF_ATOL 1e-14

/* LU factorization with partial pivoting of the n×n matrix a (row-major), in place; returns
   false if a pivot is zero. */
static bool lu_factor(size_t n, double a[MAX_STATES][MAX_STATES], size_t *perm) {
    for (size_t k = 0; k < n; k++) {
        size_t p = k;
        for (size_t i = k + 1; i < n; i++)
            if (fabs(a[i][k]) > fabs(a[p][k])) p = i;
        if (a[p][k] == 0.0) return false;
        perm[k] = p;
        if (p != k)
            for (size_t j = 0; j < n; j++) {
                double tmp = a[k][j];
                a[k][j] = a[p][j];
                a[p][j] = tmp;
            }
        for (size_t i = k + 1; i < n; i++) {
            a[i][k] /= a[k][k];
            for (size_t j = k + 1; j < n; j++) a[i][j] -= a[i][k] * a[k][j];
        }
    }
    return true;
}

/* Solves LU x = b in place for a factorization from lu_factor. */
static void lu_solve(size_t n, double lu[MAX_STATES][MAX_STATES], const size_t *perm, double *b) {
    /* lu_factor swapped whole rows (L's part included): all swaps first, in order */
    for (size_t k = 0; k < n; k++) {
        double tmp = b[k];
        b[k] = b[perm[k]];
        b[perm[k]] = tmp;
    }
    for (size_t k = 0; k < n; k++)
        for (size_t i = k + 1; i < n; i++) b[i] -= lu[i][k] * b[k];
    for (size_t k = n; k-- > 0;) {
        for (size_t j = k + 1; j < n; j++) b[k] -= lu[k][j] * b[j];
        b[k] /= lu[k][k];
    }
}

/* Jacobian df/dx (column by column) and df/dt by forward differences at (t, x), f0 = f(t, x). */
static void numeric_jacobian(const ModelData *d, double t, const double *x, const double *f0,
                             double jac[MAX_STATES][MAX_STATES], double *dfdt) {
    size_t n = MODEL.nx;
    double xp[MAX_STATES], fp[MAX_STATES];
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < n; i++) xp[i] = x[i];
        const double delta = 1.5e-8 * fmax(fabs(x[j]), 1e-6);
        xp[j] += delta;
        MODEL.derivatives(d, t, xp, fp);
        for (size_t i = 0; i < n; i++) jac[i][j] = (fp[i] - f0[i]) / delta;
    }
    const double dt = 1.5e-8 * fmax(fabs(t), 1.0);
    MODEL.derivatives(d, t + dt, x, fp);
    for (size_t i = 0; i < n; i++) dfdt[i] = (fp[i] - f0[i]) / dt;
}

/* Integrates a stiff model (no event indicators) from d->time to t_end with the L-stable
   Rosenbrock 2(3) pair of Shampine & Reichelt's ode23s: each step solves linear systems with
   W = I - h·γ·J (numeric Jacobian, refreshed every step: n ≤ MAX_STATES, so it is cheap), and
   the embedded third-order estimate controls the step size. */
static Status stiff_step(Instance *m, double t_end) {
    ModelData *d = &m->d;
    const size_t n = MODEL.nx;
    const double gamma = 1.0 / (2.0 + sqrt(2.0)), e32 = 6.0 + sqrt(2.0);
    double x[MAX_STATES], f0[MAX_STATES], f1[MAX_STATES], f2[MAX_STATES], dfdt[MAX_STATES];
    double k1[MAX_STATES], k2[MAX_STATES], k3[MAX_STATES], xs[MAX_STATES], x1[MAX_STATES];
    double jac[MAX_STATES][MAX_STATES], w[MAX_STATES][MAX_STATES];
    size_t perm[MAX_STATES];
    read_states(d, x);
    double t = d->time;
    MODEL.derivatives(d, t, x, f0);
    /* ode23s's first step: the local error of an Euler step ~ h·|f| must be about rtol^(1/3) */
    double rate = 0;
    for (size_t i = 0; i < n; i++)
        rate = fmax(rate, fabs(f0[i]) / (STIFF_ATOL + STIFF_RTOL * fabs(x[i])));
    double h = rate > 0 ? 0.8 * cbrt(STIFF_RTOL) / rate : t_end - t;
    /* a state starting at 0 with a nonzero slope makes that estimate absurdly small: start no
       shorter than this, and let the error test shrink the step if it must */
    h = fmax(h, 1e-10 * fmax(1.0, fabs(t)));
    while (t_end - t > 1e-13 * fmax(1.0, fabs(t_end))) {
        h = fmin(h, t_end - t);
        if (t_end - t - h < 1e-13 * fmax(1.0, fabs(t_end))) h = t_end - t;
        if (h < 16 * DBL_EPSILON * fmax(1.0, fabs(t))) {
            model_log(m, ST_ERROR, "logStatusError",
                      "DoStep: step size underflow at t=%.12g in the stiff integrator.", t);
            return ST_ERROR;
        }
        numeric_jacobian(d, t, x, f0, jac, dfdt);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) w[i][j] = (i == j) - h * gamma * jac[i][j];
        double err = INFINITY;
        if (lu_factor(n, w, perm)) {
            for (size_t i = 0; i < n; i++) k1[i] = f0[i] + h * gamma * dfdt[i];
            lu_solve(n, w, perm, k1);
            for (size_t i = 0; i < n; i++) xs[i] = x[i] + 0.5 * h * k1[i];
            MODEL.derivatives(d, t + 0.5 * h, xs, f1);
            for (size_t i = 0; i < n; i++) k2[i] = f1[i] - k1[i];
            lu_solve(n, w, perm, k2);
            for (size_t i = 0; i < n; i++) {
                k2[i] += k1[i];
                x1[i] = x[i] + h * k2[i];
            }
            MODEL.derivatives(d, t + h, x1, f2);
            for (size_t i = 0; i < n; i++)
                k3[i] = f2[i] - e32 * (k2[i] - f1[i]) - 2.0 * (k1[i] - f0[i]) + h * gamma * dfdt[i];
            lu_solve(n, w, perm, k3);
            err = 0;
            for (size_t i = 0; i < n; i++) {
                const double scale = STIFF_ATOL + STIFF_RTOL * fmax(fabs(x[i]), fabs(x1[i]));
                err = fmax(err, fabs(h / 6.0 * (k1[i] - 2.0 * k2[i] + k3[i])) / scale);
            }
            if (!isfinite(err)) err = INFINITY;
        }
        if (err <= 1.0) {
            t = t_end - t - h <= 0 ? t_end : t + h;
            for (size_t i = 0; i < n; i++) {
                x[i] = x1[i];
                f0[i] = f2[i];
            }
            h *= err > 0 ? fmin(5.0, 0.8 * cbrt(1.0 / err)) : 5.0;
        } else {
            h *= isfinite(err) ? fmax(0.1, 0.8 * cbrt(1.0 / err)) : 0.1;
        }
    }
    write_states(d, x);
    d->time = t_end;
    m->last_successful_time = t_end;
    refresh(d);
    return ST_OK;
}

Status model_do_step(Instance *m, double current_time, double step_size, bool stop_at_event,
                     bool *event_found) {
    *event_found = false;
    if (!model_check_mode(m, "DoStep", M(MODE_STEP))) return ST_ERROR;
    ModelData *d = &m->d;
    if (fabs(current_time - d->time) > 1e-9 * fmax(1.0, fabs(d->time))) {
        model_log(m, ST_ERROR, "logStatusError",
                  "DoStep: currentCommunicationPoint %.17g does not match the FMU time %.17g.",
                  current_time, d->time);
        return ST_ERROR;
    }
    if (!(step_size >= 0) || !isfinite(step_size)) {
        model_log(m, ST_ERROR, "logStatusError", "DoStep: illegal step size %g.", step_size);
        return ST_ERROR;
    }
    Status status = model_hostile(m);
    if (status != ST_OK) return status;

    d->time = current_time;
    const double t_end = current_time + step_size;
    const double eps = 1e-13 * fmax(1.0, fabs(t_end));
    int events = 0;

    /* an event located by an early return that the importer did not handle */
    if (d->pending_event) {
        d->pending_event = false;
        apply_event(m);
    }
    if (MODEL.stiff) return stiff_step(m, t_end);

    while (t_end - d->time > eps) {
        const double t = d->time;
        const double remaining = t_end - t;
        double n = ceil(remaining / MAX_SUBSTEP - 1e-9);
        if (n < 1) n = 1;
        const double h = n == 1 ? remaining : remaining / n;

        double x0[MAX_STATES], x1[MAX_STATES], z0[MAX_INDICATORS], z1[MAX_INDICATORS];
        read_states(d, x0);
        indicators(d, t, x0, z0);
        rk4(d, t, x0, h, x1);
        for (size_t i = 0; i < model_nx(d); i++) {
            if (!isfinite(x1[i])) {
                /* e.g. Dahlquist with k = 1e6: explicit RK4 at 1 ms substeps is unstable */
                model_log(m, ST_ERROR, "logStatusError",
                          "DoStep: the state became non-finite at t=%.12g: the internal step "
                          "is unstable for these parameters (use Model Exchange).",
                          t + h);
                return ST_ERROR;
            }
        }
        indicators(d, t + h, x1, z1);

        if (MODEL.nz == 0 || !crossed(z0, z1)) {
            write_states(d, x1);
            d->time = n == 1 ? t_end : t + h;
            continue;
        }

        /* locate the first crossing by bisection, re-integrating from the substep start */
        double lo = 0, hi = h;
        while (hi - lo > EVENT_TIME_RESOLUTION) {
            const double mid = 0.5 * (lo + hi);
            double xm[MAX_STATES], zm[MAX_INDICATORS];
            rk4(d, t, x0, mid, xm);
            indicators(d, t + mid, xm, zm);
            if (crossed(z0, zm)) hi = mid; else lo = mid;
        }
        rk4(d, t, x0, hi, x1);
        write_states(d, x1);
        d->time = t + hi;
        refresh(d);

        if (stop_at_event) {
            /* the importer handles the event in Event Mode at d->time */
            d->pending_event = true;
            *event_found = true;
            m->last_successful_time = d->time;
            return ST_OK;
        }
        apply_event(m);
        if (++events > MAX_EVENTS_PER_STEP) {
            model_log(m, ST_ERROR, "logStatusError",
                      "DoStep: more than %d events in one step at t=%.12g.",
                      MAX_EVENTS_PER_STEP, d->time);
            return ST_ERROR;
        }
    }
    d->time = t_end;
    m->last_successful_time = t_end;
    refresh(d);
    return ST_OK;
}

/* -------------------------------------------------------------------------------- FMU state */

static const unsigned char STATE_MAGIC[8] = {'F', 'G', 'W', 'S', 'T', 'A', 'T', '2'};

void *model_state_save(Instance *m) {
    ModelData *copy = malloc(sizeof *copy);
    if (copy) *copy = m->d;
    return copy;
}

/* An instance that was just instantiated takes the state's mode too, as fmusim expects of
   --initial-fmu-state-file: it restores the state instead of initialising and steps on from
   there. Any other instance keeps its mode (a state set back within a run). */
void model_state_restore(Instance *m, const void *state) {
    Mode mode = m->d.mode;
    memcpy(&m->d, state, sizeof m->d);
    const bool running = m->d.mode == MODE_STEP || m->d.mode == MODE_EVENT ||
                         m->d.mode == MODE_CONTINUOUS_TIME;
    if (!(mode == MODE_INSTANTIATED && running)) m->d.mode = mode;
    m->last_successful_time = m->d.time;
    refresh(&m->d);
}

size_t model_state_serialized_size(void) { return sizeof STATE_MAGIC + sizeof(ModelData); }

void model_state_serialize(const void *state, unsigned char *buffer) {
    memcpy(buffer, STATE_MAGIC, sizeof STATE_MAGIC);
    memcpy(buffer + sizeof STATE_MAGIC, state, sizeof(ModelData));
}

/* Why a deserialised state cannot be used, or NULL: every size in it is one the instance's
   own code could have made, so reading it back can never index past its buffers (the bytes
   come from outside: a file a user uploaded). */
static const char *state_problem(const ModelData *d) {
    for (unsigned vr = 0; vr < MODEL.n_vars; vr++) {
        for (int k = 0; k < 2; k++) {
            const unsigned dim = MODEL.vars[vr].dims[k];
            if (dim && d->u[dim] > MAX_ARRAY_VALUES) return "an array dimension is too large";
        }
        if (is_text(MODEL.vars[vr].type)) {
            const Text *text = model_text((ModelData *)d, vr);
            if (text->size > MAX_TEXT_SIZE) return "a String or Binary value is too long";
            if (MODEL.vars[vr].type == T_STRING &&
                (text->size == 0 || text->bytes[text->size - 1] != 0))
                return "a String value is not terminated";
        }
    }
    if (array_values(d) > MAX_ARRAY_VALUES || model_nx(d) > MAX_STATES)
        return "its arrays are larger than this FMU holds";
    if (!isfinite(d->time)) return "its time is not a finite number";
    if ((unsigned)d->mode > MODE_CONFIGURATION) return "its mode is unknown";
    return NULL;
}

void *model_state_deserialize(Instance *m, const unsigned char *buffer, size_t size) {
    if (size != model_state_serialized_size() ||
        memcmp(buffer, STATE_MAGIC, sizeof STATE_MAGIC) != 0) {
        model_log(m, ST_ERROR, "logStatusError", "Serialized FMU state is invalid (%zu bytes).",
                  size);
        return NULL;
    }
    ModelData *copy = malloc(sizeof *copy);
    if (!copy) return NULL;
    memcpy(copy, buffer + sizeof STATE_MAGIC, sizeof *copy);
    const char *problem = state_problem(copy);
    if (problem) {
        model_log(m, ST_ERROR, "logStatusError", "Serialized FMU state is invalid: %s.", problem);
        free(copy);
        return NULL;
    }
    return copy;
}

/* ---------------------------------------------------------------------------- hostile variants */

#if defined(HOSTILE_THREADS) || defined(HOSTILE_THREAD_BOMB)
static void *hostile_thread(void *arg) {
#ifdef HOSTILE_THREAD_BOMB
    pause(); /* hold the thread */
#endif
    volatile double *sum = arg;
    for (int i = 1; i <= 1000; i++) *sum += 1.0 / i;
    return NULL;
}
#endif

Status model_hostile(Instance *m) {
#ifndef FGW_HOSTILE
    (void)m;
    return ST_OK;
#else
    if (m->d.hostile_done) return ST_OK;
    m->d.hostile_done = true;
    bool breach = false;

#if defined(HOSTILE_ERROR)
    model_log(m, ST_ERROR, "logStatusError", "the model failed on purpose (HOSTILE_ERROR)");
    return ST_ERROR;
#elif defined(HOSTILE_ON_K)
    /* Depends on the parameter k (value reference 3), for sweeps: k = 2 is an FMI error,
       k = 3 a segmentation fault, k = 4 and 5 sleep (below); any other k runs as Dahlquist. */
    if (m->d.v[3] == 2.0) {
        model_log(m, ST_ERROR, "logStatusError", "the model failed on purpose at k = 2 (HOSTILE_ON_K)");
        m->d.hostile_done = false; /* the instance is broken: it fails again if used */
        return ST_ERROR;
    }
    if (m->d.v[3] == 3.0) {
        volatile int *volatile target = NULL;
        *target = 42;
    }
    if (m->d.v[3] == 4.0 || m->d.v[3] == 5.0) {
        /* k = 4 sleeps 10 s, k = 5 half a second (wall-clock time without CPU time) */
        struct timespec pause = m->d.v[3] == 4.0 ? (struct timespec){10, 0} : (struct timespec){0, 500000000};
        while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {}
    }
    return ST_OK;
#elif defined(HOSTILE_SLEEP)
    /* wall-clock time without CPU time: only a wall-clock deadline stops this */
    struct timespec pause = {10, 0};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {}
    breach = true;
#elif defined(HOSTILE_SEGFAULT)
    volatile int *volatile target = NULL; /* both volatile: the store must happen */
    *target = 42;
    breach = true;
#elif defined(HOSTILE_LOOP)
    volatile unsigned long spins = 0;
    for (;;) spins++;
#elif defined(HOSTILE_ALLOC)
    const size_t chunk = 64u << 20;
    for (;;) {
        char *block = malloc(chunk);
        if (!block) {
            model_log(m, ST_ERROR, "logStatusError", "malloc failed: %s", strerror(errno));
            return ST_ERROR;
        }
        memset(block, 0xA5, chunk); /* touch every page; never freed */
    }
#elif defined(HOSTILE_FORK)
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid < 0) {
        model_log(m, ST_ERROR, "logStatusError", "fork failed: %s", strerror(errno));
        return ST_ERROR;
    }
    waitpid(pid, NULL, 0);
    breach = true;
#elif defined(HOSTILE_SOCKET)
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        model_log(m, ST_ERROR, "logStatusError", "socket failed: %s", strerror(errno));
        return ST_ERROR;
    }
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons(9);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        model_log(m, ST_WARNING, "logStatusWarning", "connect to 127.0.0.1:9 failed: %s",
                  strerror(errno));
    }
    close(fd);
    breach = true;
#elif defined(HOSTILE_READ)
    const char *path = getenv("FMU_HOSTILE_PATH");
    if (!path || !path[0]) path = "/etc/hostname";
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        model_log(m, ST_ERROR, "logStatusError", "open %s failed: %s", path, strerror(errno));
        return ST_ERROR;
    }
    char buffer[64];
    if (read(fd, buffer, sizeof buffer) < 0) { /* the attempt is what matters */ }
    close(fd);
    breach = true;
#elif defined(HOSTILE_WRITE)
    const char *path = getenv("FMU_HOSTILE_PATH");
    if (!path || !path[0]) path = "/tmp/fmu-gateway-hostile-write";
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        model_log(m, ST_ERROR, "logStatusError", "open %s failed: %s", path, strerror(errno));
        return ST_ERROR;
    }
    const char text[] = "written by a hostile FMU\n";
    if (write(fd, text, sizeof text - 1) < 0) { /* the attempt is what matters */ }
    close(fd);
    breach = true;
#elif defined(HOSTILE_KILL_PARENT)
    /* The parent, then every process that looks like the server (HOSTILE_TARGET_PID, and any
       "fmu-gateway" found by scanning /proc). */
    char report[512] = "";
    pid_t targets[64];
    int n = 0;
    targets[n++] = getppid();
#ifdef HOSTILE_TARGET_PID
    targets[n++] = HOSTILE_TARGET_PID;
#endif
    DIR *proc = opendir("/proc");
    if (proc) {
        struct dirent *e;
        while ((e = readdir(proc)) && n < 64) {
            char path[300], comm[64] = "";
            snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
            FILE *f = fopen(path, "r");
            if (!f) continue;
            if (fgets(comm, sizeof comm, f) && strstr(comm, "fmu-gateway")) targets[n++] = atoi(e->d_name);
            fclose(f);
        }
        closedir(proc);
    } else {
        snprintf(report + strlen(report), sizeof report - strlen(report), "scan /proc: %s; ", strerror(errno));
    }
    for (int i = 0; i < n; i++) {
        if (targets[i] <= 1 || targets[i] == getpid()) {
            snprintf(report + strlen(report), sizeof report - strlen(report), "pid %d: not a target; ", (int)targets[i]);
            continue;
        }
        int sent = kill(targets[i], SIGKILL) == 0;
        if (sent) breach = true;
        snprintf(report + strlen(report), sizeof report - strlen(report), "kill(%d): %s; ", (int)targets[i], sent ? "sent" : strerror(errno));
    }
    if (!breach) {
        model_log(m, ST_ERROR, "logStatusError", "blocked: getppid() = %d; %s", (int)getppid(), report);
        return ST_ERROR;
    }
    model_log(m, ST_WARNING, "logStatusWarning", "got through: %s", report);
#elif defined(HOSTILE_KILL_ALL)
    /* Only ever run inside a PID namespace: elsewhere this ends every process of the uid. */
    if (getpid() != 1) {
        model_log(m, ST_ERROR, "logStatusError", "blocked: refusing kill(-1) outside a PID namespace (pid %d)", (int)getpid());
        return ST_ERROR;
    }
    if (kill(-1, SIGKILL) != 0) {
        model_log(m, ST_ERROR, "logStatusError", "blocked: kill(-1): %s", strerror(errno));
        return ST_ERROR;
    }
    model_log(m, ST_WARNING, "logStatusWarning", "got through: kill(-1) was sent");
    breach = true;
#elif defined(HOSTILE_SECRETS)
    /* The server's environment and command line, the root key, the database. */
    char report[1024] = "";
    const char *paths[4] = {NULL, NULL, NULL, NULL};
    char environ_path[64] = "", cmdline_path[64] = "";
#ifdef HOSTILE_TARGET_PID
    snprintf(environ_path, sizeof environ_path, "/proc/%d/environ", HOSTILE_TARGET_PID);
    snprintf(cmdline_path, sizeof cmdline_path, "/proc/%d/cmdline", HOSTILE_TARGET_PID);
    paths[0] = environ_path;
    paths[1] = cmdline_path;
#endif
#ifdef HOSTILE_KEY_PATH
    paths[2] = HOSTILE_KEY_PATH;
#endif
#ifdef HOSTILE_DB_PATH
    paths[3] = HOSTILE_DB_PATH;
#endif
    for (int i = 0; i < 4; i++) {
        if (!paths[i]) continue;
        int fd = open(paths[i], O_RDONLY);
        char buffer[16];
        ssize_t got = fd < 0 ? -1 : read(fd, buffer, sizeof buffer);
        int error = errno;
        if (fd >= 0) close(fd);
        if (got > 0) breach = true;
        snprintf(report + strlen(report), sizeof report - strlen(report), "%s: %s; ", paths[i], got > 0 ? "read" : strerror(error));
    }
    if (!breach) {
        model_log(m, ST_ERROR, "logStatusError", "blocked: %s", report);
        return ST_ERROR;
    }
    model_log(m, ST_WARNING, "logStatusWarning", "got through: %s", report);
#elif defined(HOSTILE_IO_URING)
    unsigned char params[120]; /* struct io_uring_params */
    memset(params, 0, sizeof params);
    long fd = syscall(425 /* io_uring_setup */, 4, params);
    if (fd < 0) {
        model_log(m, ST_ERROR, "logStatusError", "blocked: io_uring_setup: %s", strerror(errno));
        return ST_ERROR;
    }
    close((int)fd);
    model_log(m, ST_WARNING, "logStatusWarning", "got through: io_uring_setup returned a ring");
    breach = true;
#elif defined(HOSTILE_PTRACE)
    /* ptrace the server, and read its limits with prlimit64 (only reading: writing them
       would harm the machine running the test if this got through). */
#ifndef HOSTILE_TARGET_PID
#define HOSTILE_TARGET_PID 1
#endif
    char report[256] = "";
    if (ptrace(PTRACE_ATTACH, HOSTILE_TARGET_PID, NULL, NULL) == 0) {
        ptrace(PTRACE_DETACH, HOSTILE_TARGET_PID, NULL, NULL);
        breach = true;
        snprintf(report, sizeof report, "ptrace attached; ");
    } else {
        snprintf(report, sizeof report, "ptrace(%d): %s; ", HOSTILE_TARGET_PID, strerror(errno));
    }
    struct rlimit old;
    if (syscall(SYS_prlimit64, HOSTILE_TARGET_PID, RLIMIT_NOFILE, NULL, &old) == 0) {
        breach = true;
        snprintf(report + strlen(report), sizeof report - strlen(report), "prlimit64 read the limits");
    } else {
        snprintf(report + strlen(report), sizeof report - strlen(report), "prlimit64(%d): %s", HOSTILE_TARGET_PID, strerror(errno));
    }
    if (!breach) {
        model_log(m, ST_ERROR, "logStatusError", "blocked: %s", report);
        return ST_ERROR;
    }
    model_log(m, ST_WARNING, "logStatusWarning", "got through: %s", report);
#elif defined(HOSTILE_FDS)
    /* Descriptors inherited from the server: anything but stdio and the worker's own pipe. */
    char report[512] = "";
    struct stat here;
    if (stat(".", &here) != 0) here.st_dev = (dev_t)-1;
    for (int fd = 3; fd < 1024; fd++) {
        struct stat st;
        if (fstat(fd, &st) != 0) continue;
        if (S_ISFIFO(st.st_mode)) continue; /* the result channel */
        if (S_ISREG(st.st_mode) && st.st_dev == here.st_dev) continue; /* the run's own log */
        breach = true;
        snprintf(report + strlen(report), sizeof report - strlen(report), "fd %d (mode %o); ", fd, (unsigned)(st.st_mode & S_IFMT));
    }
    if (!breach) {
        model_log(m, ST_ERROR, "logStatusError", "blocked: no descriptors besides stdio and the result pipe");
        return ST_ERROR;
    }
    model_log(m, ST_WARNING, "logStatusWarning", "got through: %s", report);
#elif defined(HOSTILE_UNIX_SOCKET)
    /* Connect to an abstract and a pathname unix socket the test listens on. */
    char report[512] = "";
    const char *names[2] = {NULL, NULL};
#ifdef HOSTILE_SOCKET_NAME
    names[0] = HOSTILE_SOCKET_NAME; /* abstract */
#endif
#ifdef HOSTILE_SOCKET_PATH
    names[1] = HOSTILE_SOCKET_PATH;
#endif
    for (int i = 0; i < 2; i++) {
        if (!names[i]) continue;
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0) {
            snprintf(report + strlen(report), sizeof report - strlen(report), "%s socket: %s; ", i ? "pathname" : "abstract", strerror(errno));
            continue;
        }
        struct sockaddr_un address;
        memset(&address, 0, sizeof address);
        address.sun_family = AF_UNIX;
        size_t len = strlen(names[i]);
        if (len > sizeof address.sun_path - 2) len = sizeof address.sun_path - 2;
        memcpy(address.sun_path + (i == 0 ? 1 : 0), names[i], len);
        socklen_t size = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (i == 0 ? 1 : 0));
        if (connect(fd, (struct sockaddr *)&address, size) == 0) {
            breach = true;
            snprintf(report + strlen(report), sizeof report - strlen(report), "%s: connected; ", names[i]);
        } else {
            snprintf(report + strlen(report), sizeof report - strlen(report), "%s connect: %s; ", names[i], strerror(errno));
        }
        close(fd);
    }
    if (!breach) {
        model_log(m, ST_ERROR, "logStatusError", "blocked: %s", report);
        return ST_ERROR;
    }
    model_log(m, ST_WARNING, "logStatusWarning", "got through: %s", report);
#elif defined(HOSTILE_FILL_DISK)
    /* Many files of 1 MiB each in the working (scratch) directory, up to 2 GiB. */
    static char block[1 << 20];
    memset(block, 0x5A, sizeof block);
    long files = 0;
    unsigned long long written = 0;
    int error = 0;
    while (written < (2ULL << 30)) {
        char name[64];
        snprintf(name, sizeof name, "fill-%ld", files);
        int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) { error = errno; break; }
        files++;
        ssize_t got = write(fd, block, sizeof block);
        if (got > 0) written += (unsigned long long)got;
        if (got != (ssize_t)sizeof block) { error = got < 0 ? errno : ENOSPC; close(fd); break; }
        close(fd);
    }
    if (error) {
        model_log(m, ST_ERROR, "logStatusError", "blocked: %llu MiB in %ld files, then: %s", written >> 20, files, strerror(error));
        return ST_ERROR;
    }
    model_log(m, ST_WARNING, "logStatusWarning", "got through: wrote %llu MiB in %ld files", written >> 20, files);
    breach = true;
#elif defined(HOSTILE_THREADS)
    /* Not an attack: a model that parallelises with a few threads of its own must work. */
    pthread_t threads[4];
    double sums[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        int error = pthread_create(&threads[i], NULL, hostile_thread, &sums[i]);
        if (error) {
            model_log(m, ST_ERROR, "logStatusError", "pthread_create failed: %s", strerror(error));
            return ST_ERROR;
        }
    }
    for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);
    model_log(m, ST_WARNING, "logStatusWarning", "4 threads ran (sum %.6f)", sums[0] + sums[1] + sums[2] + sums[3]);
#elif defined(HOSTILE_THREAD_BOMB)
    int started = 0, error = 0;
    static double sink;
    for (int i = 0; i < 10000; i++) {
        pthread_t thread;
        error = pthread_create(&thread, NULL, hostile_thread, &sink);
        if (error) break;
        started++;
    }
    if (started >= 10000) {
        model_log(m, ST_WARNING, "logStatusWarning", "got through: %d threads started", started);
        breach = true;
    } else {
        model_log(m, ST_ERROR, "logStatusError", "blocked: %d threads, then pthread_create: %s", started, strerror(error));
        return ST_ERROR;
    }
#elif defined(HOSTILE_FORK_BOMB)
    int started = 0, error = 0;
    for (int i = 0; i < 10000; i++) {
        pid_t pid = fork();
        if (pid == 0) { pause(); _exit(0); }
        if (pid < 0) { error = errno; break; }
        started++;
    }
    if (started == 0) {
        model_log(m, ST_ERROR, "logStatusError", "blocked: fork: %s", strerror(error));
        return ST_ERROR;
    }
    model_log(m, ST_WARNING, "logStatusWarning", "got through: %d processes started", started);
    breach = true;
#endif

    if (breach && MODEL.breach_vr >= 0) m->d.v[MODEL.breach_vr] = 1.0;
    return ST_OK;
#endif
}
