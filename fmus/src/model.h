/*
 * Shared core of the FMU Gateway demo models.
 *
 * Every model keeps its variables in arrays indexed by value reference (value reference 0 is
 * always `time`): Float64 and Float32 values in `v` (doubles; a Float32 is exact in a double),
 * signed integers, Booleans and enumerations in `i`, unsigned integers in `u`, and strings and
 * binaries in fixed-size `text` slots (so that an FMU state stays plain data that can be
 * copied and serialized). A model file describes its variables with a table of
 * VarSpec entries and provides a few callbacks (derivatives, event indicators, the event reset,
 * calculated outputs). The FMI 3.0 and FMI 2.0 glue files (fmi3_api.c, fmi2_api.c) map the
 * standard API onto the functions declared here; this core owns the modes, the access rules
 * for setting values, the Co-Simulation integrator (RK4 with event location) and logging.
 */
#ifndef FGW_MODEL_H
#define FGW_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FGW_EXPORT __attribute__((visibility("default")))

/* The build defines FGW_FMI3 or FGW_FMI2: the type that carries enumeration values. */
#ifdef FGW_FMI2
#define ENUMERATION_CARRIER T_INT32
#else
#define ENUMERATION_CARRIER T_INT64
#endif

/* Set when compiled as one of the hostile sandbox test variants. */
#if defined(HOSTILE_SEGFAULT) || defined(HOSTILE_LOOP) || defined(HOSTILE_ALLOC) ||           \
    defined(HOSTILE_FORK) || defined(HOSTILE_SOCKET) || defined(HOSTILE_READ) ||              \
    defined(HOSTILE_WRITE) || defined(HOSTILE_ERROR) || defined(HOSTILE_SLEEP) ||             \
    defined(HOSTILE_KILL_PARENT) || defined(HOSTILE_KILL_ALL) || defined(HOSTILE_SECRETS) ||   \
    defined(HOSTILE_IO_URING) || defined(HOSTILE_PTRACE) || defined(HOSTILE_FDS) ||            \
    defined(HOSTILE_UNIX_SOCKET) || defined(HOSTILE_FILL_DISK) || defined(HOSTILE_FORK_BOMB) || \
    defined(HOSTILE_THREADS) || defined(HOSTILE_THREAD_BOMB) || defined(HOSTILE_ON_K)
#define FGW_HOSTILE 1
#endif

#define MAX_VARS 64
#define MAX_TEXTS 4        /* String and Binary variables per model */
#define MAX_TEXT_SIZE 1024 /* bytes per String (with its terminating NUL) or Binary value */
#define MAX_ARRAY_VALUES 1152 /* elements of all Float64 arrays together */
#define MAX_STATES 16 /* continuous state elements (array states count element by element) */
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
    K_OUTPUT_FLAG,       /* discrete output with a start value, written by the FMU only */
    K_STRUCTURAL,        /* structural parameter (fixed): settable in Configuration Mode only */
    K_STATE_CALCULATED   /* continuous state computed from parameters during initialization */
} VarKind;

/* The FMI type of a variable. Float64 is zero so that tables which leave it out mean Float64.
   FMI 2.0 maps Real to Float64, Integer to Int32. */
typedef enum {
    T_FLOAT64 = 0,
    T_FLOAT32,
    T_INT8,
    T_UINT8,
    T_INT16,
    T_UINT16,
    T_INT32,
    T_UINT32,
    T_INT64,
    T_UINT64,
    T_BOOLEAN,
    T_STRING,
    T_BINARY,
    T_ENUMERATION /* an Int64 (FMI 3) or Integer (FMI 2) value of a declared type */
} VarType;

typedef struct {
    const char *name;
    VarKind kind;
    double start;          /* numeric start (integers and Booleans too: 0 or 1) */
    VarType type;          /* T_FLOAT64 unless stated */
    const char *start_text; /* String: the start text; Binary: start_size bytes */
    size_t start_size;
    bool bounded;          /* min and max are declared and enforced on every set */
    double min, max;
    /* Float64 arrays (FMI 3): the value references of the structural parameters that give
       the dimensions, 0 where there is none; a scalar has dims[0] == 0. Arrays live in
       ModelData.array in table order, row-major, and take their start values from the
       model's `configure`. */
    unsigned dims[2];
} VarSpec;

/* A String (with its NUL) or Binary value, held in the instance. */
typedef struct {
    size_t size;
    unsigned char bytes[MAX_TEXT_SIZE];
} Text;

/* One value of any type, as passed between the glue and the core. */
typedef union {
    double f;         /* Float64, Float32 */
    int64_t i;        /* signed integers, Boolean (0/1), Enumeration */
    uint64_t u;       /* unsigned integers */
    struct {
        const unsigned char *bytes;
        size_t size;  /* String: strlen + 1 */
    } text;           /* String, Binary */
} Value;

typedef enum {
    MODE_INSTANTIATED,
    MODE_INITIALIZATION,
    MODE_EVENT,           /* ME event mode, or CS event mode when eventModeUsed */
    MODE_CONTINUOUS_TIME, /* ME */
    MODE_STEP,            /* CS */
    MODE_TERMINATED,
    MODE_CONFIGURATION /* structural parameters are set here (entered from Instantiated) */
} Mode;

typedef enum { IF_MODEL_EXCHANGE, IF_CO_SIMULATION } Interface;

/* Everything that makes up the state of an instance; plain data so it can be copied. */
typedef struct {
    double v[MAX_VARS];               /* Float64/Float32 by value reference, v[0] == time */
    int64_t i[MAX_VARS];              /* signed integers, Booleans, enumerations */
    uint64_t u[MAX_VARS];             /* unsigned integers */
    Text text[MAX_TEXTS];             /* Strings and Binaries, in table order (model_text) */
    double array[MAX_ARRAY_VALUES];   /* Float64 arrays, in table order (model_values) */
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
    size_t nx;                      /* number of state variables (each a scalar or an array) */
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
    /* gives the arrays their start values for the current structural parameters (at reset
       and when Configuration Mode ends); may be NULL */
    void (*configure)(ModelData *d);
    /* computes K_STATE_CALCULATED states from parameters; called until initialization ends;
       may be NULL */
    void (*initialize)(ModelData *d);
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
    /* With logging on, the categories whose OK-status messages are logged: bit k for
       LOG_CATEGORIES[k] (model.c), all of them until fmiXSetDebugLogging names some. */
    unsigned log_categories;
    bool event_mode_used;
    bool early_return_allowed;
    LogFunction log;            /* set by the glue; forwards to the importer's callback */
    void *glue;                 /* glue-specific data (callback pointers) */
    double last_successful_time;
} Instance;

/* Lifecycle */
/* fmi2SetDebugLogging / fmi3SetDebugLogging: with no categories, logging on or off for all;
   else on or off for those named (an unknown name is an error). */
Status model_set_debug_logging(Instance *m, bool logging_on, size_t n, const char *const names[]);

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

/* Variable access by value reference. Every access is type-checked: a value reference of
   another type (or an unknown one) is an error with a log message naming the function. */
Status model_get_float(Instance *m, const unsigned *vrs, size_t n, double *values);
Status model_set_float(Instance *m, const unsigned *vrs, size_t n, const double *values);
Status model_reject_vrs(Instance *m, const char *function, const unsigned *vrs, size_t n);

/* Typed access, one value at a time. A set is done in three steps so that a call that fails
   changes nothing: model_check_set for every value, then model_store for every value, then
   model_values_changed once. `type` is what the calling function handles; Enumeration
   variables are read and written by the Int64 functions (FMI 3) or Integer ones (FMI 2). */
Status model_get_value(Instance *m, const char *function, VarType type, unsigned vr,
                       Value *value);
Status model_check_set(Instance *m, const char *function, VarType type, unsigned vr,
                       Value value);
void model_store(Instance *m, unsigned vr, Value value);
void model_values_changed(Instance *m);
/* Float64 arrays (FMI 3). A scalar Float64 is an array of one element, so models read every
   Float64 variable through model_values. */
size_t model_size(const ModelData *d, unsigned vr);
double *model_values(ModelData *d, unsigned vr);
/* Number of continuous state elements. */
size_t model_nx(const ModelData *d);
/* fmi3Get/SetFloat64: nValues is the total number of elements, arrays row-major. */
Status model_get_float64(Instance *m, const unsigned *vrs, size_t nvr, double *values,
                         size_t n_values);
Status model_set_float64(Instance *m, const unsigned *vrs, size_t nvr, const double *values,
                         size_t n_values);
/* Configuration Mode, for models with structural parameters. */
Status model_enter_configuration(Instance *m);
Status model_exit_configuration(Instance *m);

/* The String/Binary slot of variable `vr` (which must be one). */
Text *model_text(ModelData *d, unsigned vr);

/* Copies the value of variable `from` to variable `to` (of the same type), for models whose
   outputs repeat their inputs. */
void model_copy_value(ModelData *d, unsigned from, unsigned to);

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
