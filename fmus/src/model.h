/*
 * Shared core of the FMU Gateway demo models.
 *
 * Every model keeps all of its variables in one array of doubles indexed by value reference
 * (value reference 0 is always `time`). A model file describes its variables with a table of
 * VarSpec entries and provides a few callbacks (derivatives, event indicators, the event reset,
 * calculated outputs). The FMI 3.0 and FMI 2.0 glue files (fmi3_api.c, fmi2_api.c) map the
 * standard API onto the functions declared here; this core owns the modes, the access rules
 * for setting values, the Co-Simulation integrator (RK4 with event location) and logging.
 */
#ifndef FGW_MODEL_H
#define FGW_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#define FGW_EXPORT __attribute__((visibility("default")))

/* Set when compiled as one of the hostile sandbox test variants. */
#if defined(HOSTILE_SEGFAULT) || defined(HOSTILE_LOOP) || defined(HOSTILE_ALLOC) ||           \
    defined(HOSTILE_FORK) || defined(HOSTILE_SOCKET) || defined(HOSTILE_READ) ||              \
    defined(HOSTILE_WRITE) || defined(HOSTILE_ERROR) || defined(HOSTILE_SLEEP) ||             \
    defined(HOSTILE_KILL_PARENT) || defined(HOSTILE_KILL_ALL) || defined(HOSTILE_SECRETS) ||   \
    defined(HOSTILE_IO_URING) || defined(HOSTILE_PTRACE) || defined(HOSTILE_FDS) ||            \
    defined(HOSTILE_UNIX_SOCKET) || defined(HOSTILE_FILL_DISK) || defined(HOSTILE_FORK_BOMB) || \
    defined(HOSTILE_THREADS) || defined(HOSTILE_THREAD_BOMB)
#define FGW_HOSTILE 1
#endif

#define MAX_VARS 16
#define MAX_STATES 4
#define MAX_INDICATORS 4
#define MAX_INTERNAL 4

/* Status codes: the numeric values are the same in FMI 2.0 and FMI 3.0. */
typedef enum { ST_OK = 0, ST_WARNING = 1, ST_DISCARD = 2, ST_ERROR = 3, ST_FATAL = 4 } Status;

/* What a variable is; decides when it may be set. */
typedef enum {
    K_TIME,              /* the independent variable */
    K_PARAMETER_FIXED,   /* settable before initialization ends */
    K_PARAMETER_TUNABLE, /* additionally settable in event mode (ME) and step mode (CS) */
    K_INPUT_CONTINUOUS,  /* settable at any time */
    K_INPUT_DISCRETE,    /* settable in initialization, event mode (ME), step mode (CS) */
    K_STATE,             /* start value settable before initialization ends */
    K_DERIVATIVE,        /* calculated */
    K_OUTPUT_CALCULATED, /* calculated */
    K_OUTPUT_FLAG        /* discrete output with a start value, written by the FMU only */
} VarKind;

typedef struct {
    const char *name;
    VarKind kind;
    double start;
} VarSpec;

typedef enum {
    MODE_INSTANTIATED,
    MODE_INITIALIZATION,
    MODE_EVENT,           /* ME event mode, or CS event mode when eventModeUsed */
    MODE_CONTINUOUS_TIME, /* ME */
    MODE_STEP,            /* CS */
    MODE_TERMINATED
} Mode;

typedef enum { IF_MODEL_EXCHANGE, IF_CO_SIMULATION } Interface;

/* Everything that makes up the state of an instance; plain data so it can be copied. */
typedef struct {
    double v[MAX_VARS];               /* variables by value reference, v[0] == time */
    double internal[MAX_INTERNAL];    /* model-private discrete state */
    double time;
    Mode mode;
    bool pending_event; /* CS: located by an early return, not yet handled */
    bool hostile_done;
} ModelData;

typedef struct ModelDef {
    const char *name;
    size_t n_vars;
    const VarSpec *vars;
    size_t nx;
    const unsigned *state_vrs;      /* continuous states */
    const unsigned *derivative_vrs; /* their derivatives, same order */
    size_t nz;                      /* number of event indicators */
    int breach_vr;                  /* value reference of `breach` (hostile variants) or -1 */
    /* Stiff: Co-Simulation integrates with the implicit Rosenbrock method (stiff_step in
       model.c) instead of RK4, whose stability would need absurdly small substeps. Stiff
       models have no event indicators (nz == 0). */
    bool stiff;
    /* dx = f(t, x) using parameters and inputs from d->v */
    void (*derivatives)(const ModelData *d, double t, const double *x, double *dx);
    /* z = g(t, x); may be NULL when nz == 0 */
    void (*event_indicators)(const ModelData *d, double t, const double *x, double *z);
    /* applies the event reset to d (states in d->v); returns true if a continuous state
       changed; may be NULL */
    bool (*on_event)(ModelData *d, char *message, size_t message_size);
    /* computes calculated outputs in d->v from the current states; may be NULL */
    void (*outputs)(ModelData *d);
} ModelDef;

/* Every model file defines exactly one of these. */
extern const ModelDef MODEL;

typedef void (*LogFunction)(void *instance, Status status, const char *category,
                            const char *message);

typedef struct {
    ModelData d;
    Interface interface;
    char *instance_name;
    bool logging_on;
    bool event_mode_used;
    bool early_return_allowed;
    LogFunction log;            /* set by the glue; forwards to the importer's callback */
    void *glue;                 /* glue-specific data (callback pointers) */
    double last_successful_time;
} Instance;

/* Lifecycle */
Instance *model_new(const char *instance_name, Interface interface, bool logging_on,
                    LogFunction log, void *glue);
void model_free(Instance *m);
void model_reset(Instance *m);

/* Logging: errors and warnings always go to the importer; OK-status (debug) messages only
   when logging is on. */
void model_log(Instance *m, Status status, const char *category, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Checks that the instance is in one of the allowed modes (bit mask of 1 << Mode). */
bool model_check_mode(Instance *m, const char *function, unsigned allowed);
#define M(mode) (1u << (mode))

/* Variable access by value reference */
Status model_get_float(Instance *m, const unsigned *vrs, size_t n, double *values);
Status model_set_float(Instance *m, const unsigned *vrs, size_t n, const double *values);
Status model_reject_vrs(Instance *m, const char *function, const unsigned *vrs, size_t n);

/* Modes */
Status model_enter_initialization(Instance *m, double start_time);
Status model_exit_initialization(Instance *m);
Status model_enter_event_mode(Instance *m);
Status model_update_discrete_states(Instance *m, bool *values_changed);
Status model_enter_continuous_time_mode(Instance *m);
Status model_enter_step_mode(Instance *m);
Status model_terminate(Instance *m);

/* Model Exchange */
Status model_set_time(Instance *m, double t);
Status model_set_states(Instance *m, const double *x, size_t nx);
Status model_get_states(Instance *m, double *x, size_t nx);
Status model_get_derivatives(Instance *m, double *dx, size_t nx);
Status model_get_event_indicators(Instance *m, double *z, size_t nz);
Status model_get_nominals(Instance *m, double *nominals, size_t nx);

/* Co-Simulation: advances from current_time by step_size. If an event is found and
   `stop_at_event` is set, stops there before applying the reset and reports it. */
Status model_do_step(Instance *m, double current_time, double step_size, bool stop_at_event,
                     bool *event_found);

/* FMU state: a heap copy of ModelData (mode excluded), serialized with a small header. */
void *model_state_save(Instance *m);
void model_state_restore(Instance *m, const void *state);
size_t model_state_serialized_size(void);
void model_state_serialize(const void *state, unsigned char *buffer);
void *model_state_deserialize(Instance *m, const unsigned char *buffer, size_t size);

/* Runs the compiled-in hostile behaviour once per instance (no-op in library models). */
Status model_hostile(Instance *m);

#endif
