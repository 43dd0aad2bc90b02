/* FMI 3.0 API of the FMU Gateway demo models: maps the standard functions onto model.h. */
#include "fmi3_defs.h"
#include "model.h"

#include <stdlib.h>
#include <string.h>

#ifndef INSTANTIATION_TOKEN
#error "INSTANTIATION_TOKEN must be defined (the build passes it with -D)"
#endif

typedef struct {
    fmi3LogMessageCallback log_message;
    fmi3InstanceEnvironment environment;
} Glue;

static void forward_log(void *instance, Status status, const char *category,
                        const char *message) {
    Glue *glue = ((Instance *)instance)->glue;
    if (glue && glue->log_message)
        glue->log_message(glue->environment, (fmi3Status)status, category, message);
}

#define INSTANCE                                                                               \
    Instance *m = (Instance *)instance;                                                        \
    if (!m) return fmi3Error

static fmi3Status unsupported(fmi3Instance instance, const char *function) {
    INSTANCE;
    model_log(m, ST_ERROR, "logStatusError", "%s is not supported by this FMU.", function);
    return fmi3Error;
}

static Instance *instantiate(fmi3String instanceName, fmi3String instantiationToken,
                             Interface interface, fmi3Boolean loggingOn,
                             fmi3InstanceEnvironment instanceEnvironment,
                             fmi3LogMessageCallback logMessage) {
    if (!instantiationToken || strcmp(instantiationToken, INSTANTIATION_TOKEN) != 0) {
        if (logMessage)
            logMessage(instanceEnvironment, fmi3Error, "logStatusError",
                       "The instantiation token does not match this FMU (expected "
                       INSTANTIATION_TOKEN ").");
        return NULL;
    }
    Glue *glue = calloc(1, sizeof *glue);
    if (!glue) return NULL;
    glue->log_message = logMessage;
    glue->environment = instanceEnvironment;
    Instance *m = model_new(instanceName, interface, loggingOn, forward_log, glue);
    if (!m) free(glue);
    return m;
}

/* ------------------------------------------------------------------ inquire, create, destroy */

FGW_EXPORT const char *fmi3GetVersion(void) { return "3.0"; }

FGW_EXPORT fmi3Status fmi3SetDebugLogging(fmi3Instance instance, fmi3Boolean loggingOn,
                                          size_t nCategories, const fmi3String categories[]) {
    INSTANCE;
    return (fmi3Status)model_set_debug_logging(m, loggingOn, nCategories, categories);
}

FGW_EXPORT fmi3Instance fmi3InstantiateModelExchange(
    fmi3String instanceName, fmi3String instantiationToken, fmi3String resourcePath,
    fmi3Boolean visible, fmi3Boolean loggingOn, fmi3InstanceEnvironment instanceEnvironment,
    fmi3LogMessageCallback logMessage) {
    (void)resourcePath;
    (void)visible;
    return instantiate(instanceName, instantiationToken, IF_MODEL_EXCHANGE, loggingOn,
                       instanceEnvironment, logMessage);
}

FGW_EXPORT fmi3Instance fmi3InstantiateCoSimulation(
    fmi3String instanceName, fmi3String instantiationToken, fmi3String resourcePath,
    fmi3Boolean visible, fmi3Boolean loggingOn, fmi3Boolean eventModeUsed,
    fmi3Boolean earlyReturnAllowed, const fmi3ValueReference requiredIntermediateVariables[],
    size_t nRequiredIntermediateVariables, fmi3InstanceEnvironment instanceEnvironment,
    fmi3LogMessageCallback logMessage, fmi3IntermediateUpdateCallback intermediateUpdate) {
    (void)resourcePath;
    (void)visible;
    (void)requiredIntermediateVariables;
    (void)nRequiredIntermediateVariables;
    (void)intermediateUpdate;
    Instance *m = instantiate(instanceName, instantiationToken, IF_CO_SIMULATION, loggingOn,
                              instanceEnvironment, logMessage);
    if (m) {
        m->event_mode_used = eventModeUsed;
        m->early_return_allowed = earlyReturnAllowed;
    }
    return m;
}

FGW_EXPORT fmi3Instance fmi3InstantiateScheduledExecution(
    fmi3String instanceName, fmi3String instantiationToken, fmi3String resourcePath,
    fmi3Boolean visible, fmi3Boolean loggingOn, fmi3InstanceEnvironment instanceEnvironment,
    fmi3LogMessageCallback logMessage, fmi3ClockUpdateCallback clockUpdate,
    fmi3LockPreemptionCallback lockPreemption, fmi3UnlockPreemptionCallback unlockPreemption) {
    (void)instanceName;
    (void)instantiationToken;
    (void)resourcePath;
    (void)visible;
    (void)loggingOn;
    (void)clockUpdate;
    (void)lockPreemption;
    (void)unlockPreemption;
    if (logMessage)
        logMessage(instanceEnvironment, fmi3Error, "logStatusError",
                   "Scheduled Execution is not supported by this FMU.");
    return NULL;
}

FGW_EXPORT void fmi3FreeInstance(fmi3Instance instance) { model_free((Instance *)instance); }

/* ---------------------------------------------------------- initialization, termination, reset */

FGW_EXPORT fmi3Status fmi3EnterInitializationMode(fmi3Instance instance,
                                                  fmi3Boolean toleranceDefined,
                                                  fmi3Float64 tolerance, fmi3Float64 startTime,
                                                  fmi3Boolean stopTimeDefined,
                                                  fmi3Float64 stopTime) {
    INSTANCE;
    (void)toleranceDefined;
    (void)tolerance;
    (void)stopTimeDefined;
    (void)stopTime;
    return (fmi3Status)model_enter_initialization(m, startTime);
}

FGW_EXPORT fmi3Status fmi3ExitInitializationMode(fmi3Instance instance) {
    INSTANCE;
    return (fmi3Status)model_exit_initialization(m);
}

FGW_EXPORT fmi3Status fmi3EnterEventMode(fmi3Instance instance) {
    INSTANCE;
    return (fmi3Status)model_enter_event_mode(m);
}

FGW_EXPORT fmi3Status fmi3Terminate(fmi3Instance instance) {
    INSTANCE;
    return (fmi3Status)model_terminate(m);
}

FGW_EXPORT fmi3Status fmi3Reset(fmi3Instance instance) {
    INSTANCE;
    model_reset(m);
    return fmi3OK;
}

/* ------------------------------------------------------------------------ getting and setting */

static fmi3Status check_sizes(Instance *m, const char *function, size_t nvr, size_t nValues) {
    if (nvr == nValues) return fmi3OK;
    model_log(m, ST_ERROR, "logStatusError",
              "%s: %zu values for %zu value references (only Float64 variables are arrays).", function,
              nValues, nvr);
    return fmi3Error;
}

FGW_EXPORT fmi3Status fmi3GetFloat64(fmi3Instance instance, const fmi3ValueReference vr[],
                                     size_t nvr, fmi3Float64 values[], size_t nValues) {
    INSTANCE;
    return (fmi3Status)model_get_float64(m, vr, nvr, values, nValues);
}

FGW_EXPORT fmi3Status fmi3SetFloat64(fmi3Instance instance, const fmi3ValueReference vr[],
                                     size_t nvr, const fmi3Float64 values[], size_t nValues) {
    INSTANCE;
    return (fmi3Status)model_set_float64(m, vr, nvr, values, nValues);
}

/* Typed getters and setters: each converts between its C type and the core's Value. A set
   checks every value before it stores any, so a call that fails changes nothing. */
#define GET_TYPED(NAME, CTYPE, VTYPE, FIELD)                                                   \
    FGW_EXPORT fmi3Status NAME(fmi3Instance instance, const fmi3ValueReference vr[],           \
                               size_t nvr, CTYPE values[], size_t nValues) {                   \
        INSTANCE;                                                                              \
        if (check_sizes(m, #NAME, nvr, nValues) != fmi3OK) return fmi3Error;                   \
        if (nvr > 0 && (!vr || !values)) return fmi3Error;                                     \
        model_values_changed(m);                                                               \
        for (size_t k = 0; k < nvr; k++) {                                                     \
            Value value;                                                                       \
            if (model_get_value(m, #NAME, VTYPE, vr[k], &value) != ST_OK) return fmi3Error;    \
            values[k] = (CTYPE)value.FIELD;                                                    \
        }                                                                                      \
        return fmi3OK;                                                                         \
    }
#define SET_TYPED(NAME, CTYPE, VTYPE, FIELD, STORAGE)                                          \
    FGW_EXPORT fmi3Status NAME(fmi3Instance instance, const fmi3ValueReference vr[],           \
                               size_t nvr, const CTYPE values[], size_t nValues) {             \
        INSTANCE;                                                                              \
        if (check_sizes(m, #NAME, nvr, nValues) != fmi3OK) return fmi3Error;                   \
        if (nvr > 0 && (!vr || !values)) return fmi3Error;                                     \
        for (size_t k = 0; k < nvr; k++) {                                                     \
            Value value = {.FIELD = (STORAGE)values[k]};                                       \
            if (model_check_set(m, #NAME, VTYPE, vr[k], value) != ST_OK) return fmi3Error;     \
        }                                                                                      \
        for (size_t k = 0; k < nvr; k++) model_store(m, vr[k], (Value){.FIELD = (STORAGE)values[k]}); \
        model_values_changed(m);                                                               \
        return fmi3OK;                                                                         \
    }

GET_TYPED(fmi3GetFloat32, fmi3Float32, T_FLOAT32, f)
GET_TYPED(fmi3GetInt8, fmi3Int8, T_INT8, i)
GET_TYPED(fmi3GetUInt8, fmi3UInt8, T_UINT8, u)
GET_TYPED(fmi3GetInt16, fmi3Int16, T_INT16, i)
GET_TYPED(fmi3GetUInt16, fmi3UInt16, T_UINT16, u)
GET_TYPED(fmi3GetInt32, fmi3Int32, T_INT32, i)
GET_TYPED(fmi3GetUInt32, fmi3UInt32, T_UINT32, u)
GET_TYPED(fmi3GetInt64, fmi3Int64, T_INT64, i)
GET_TYPED(fmi3GetUInt64, fmi3UInt64, T_UINT64, u)
GET_TYPED(fmi3GetBoolean, fmi3Boolean, T_BOOLEAN, i)
SET_TYPED(fmi3SetFloat32, fmi3Float32, T_FLOAT32, f, double)
SET_TYPED(fmi3SetInt8, fmi3Int8, T_INT8, i, int64_t)
SET_TYPED(fmi3SetUInt8, fmi3UInt8, T_UINT8, u, uint64_t)
SET_TYPED(fmi3SetInt16, fmi3Int16, T_INT16, i, int64_t)
SET_TYPED(fmi3SetUInt16, fmi3UInt16, T_UINT16, u, uint64_t)
SET_TYPED(fmi3SetInt32, fmi3Int32, T_INT32, i, int64_t)
SET_TYPED(fmi3SetUInt32, fmi3UInt32, T_UINT32, u, uint64_t)
SET_TYPED(fmi3SetInt64, fmi3Int64, T_INT64, i, int64_t)
SET_TYPED(fmi3SetUInt64, fmi3UInt64, T_UINT64, u, uint64_t)
SET_TYPED(fmi3SetBoolean, fmi3Boolean, T_BOOLEAN, i, int64_t)

/* Strings and binaries are copied into the instance; the pointers handed out point into it
   and stay valid until the next call that sets the variable (the standard asks for the next
   call of any function). */
FGW_EXPORT fmi3Status fmi3GetString(fmi3Instance instance, const fmi3ValueReference vr[],
                                    size_t nvr, fmi3String values[], size_t nValues) {
    INSTANCE;
    if (check_sizes(m, "fmi3GetString", nvr, nValues) != fmi3OK) return fmi3Error;
    if (nvr > 0 && (!vr || !values)) return fmi3Error;
    model_values_changed(m);
    for (size_t k = 0; k < nvr; k++) {
        Value value;
        if (model_get_value(m, "fmi3GetString", T_STRING, vr[k], &value) != ST_OK)
            return fmi3Error;
        values[k] = (fmi3String)value.text.bytes;
    }
    return fmi3OK;
}

FGW_EXPORT fmi3Status fmi3SetString(fmi3Instance instance, const fmi3ValueReference vr[],
                                    size_t nvr, const fmi3String values[], size_t nValues) {
    INSTANCE;
    if (check_sizes(m, "fmi3SetString", nvr, nValues) != fmi3OK) return fmi3Error;
    if (nvr > 0 && (!vr || !values)) return fmi3Error;
    for (size_t k = 0; k < nvr; k++) {
        Value value = {.text = {(const unsigned char *)values[k],
                                values[k] ? strlen(values[k]) + 1 : 0}};
        if (model_check_set(m, "fmi3SetString", T_STRING, vr[k], value) != ST_OK)
            return fmi3Error;
    }
    for (size_t k = 0; k < nvr; k++) {
        Value value = {.text = {(const unsigned char *)values[k], strlen(values[k]) + 1}};
        model_store(m, vr[k], value);
    }
    model_values_changed(m);
    return fmi3OK;
}

FGW_EXPORT fmi3Status fmi3GetBinary(fmi3Instance instance, const fmi3ValueReference vr[],
                                    size_t nvr, size_t valueSizes[], fmi3Binary values[],
                                    size_t nValues) {
    INSTANCE;
    if (check_sizes(m, "fmi3GetBinary", nvr, nValues) != fmi3OK) return fmi3Error;
    if (nvr > 0 && (!vr || !values || !valueSizes)) return fmi3Error;
    model_values_changed(m);
    for (size_t k = 0; k < nvr; k++) {
        Value value;
        if (model_get_value(m, "fmi3GetBinary", T_BINARY, vr[k], &value) != ST_OK)
            return fmi3Error;
        values[k] = value.text.bytes;
        valueSizes[k] = value.text.size;
    }
    return fmi3OK;
}

FGW_EXPORT fmi3Status fmi3SetBinary(fmi3Instance instance, const fmi3ValueReference vr[],
                                    size_t nvr, const size_t valueSizes[],
                                    const fmi3Binary values[], size_t nValues) {
    INSTANCE;
    if (check_sizes(m, "fmi3SetBinary", nvr, nValues) != fmi3OK) return fmi3Error;
    if (nvr > 0 && (!vr || !values || !valueSizes)) return fmi3Error;
    for (size_t k = 0; k < nvr; k++) {
        Value value = {.text = {values[k], valueSizes[k]}};
        if (model_check_set(m, "fmi3SetBinary", T_BINARY, vr[k], value) != ST_OK)
            return fmi3Error;
    }
    for (size_t k = 0; k < nvr; k++)
        model_store(m, vr[k], (Value){.text = {values[k], valueSizes[k]}});
    model_values_changed(m);
    return fmi3OK;
}

FGW_EXPORT fmi3Status fmi3GetClock(fmi3Instance instance, const fmi3ValueReference vr[],
                                   size_t nvr, fmi3Clock values[]) {
    INSTANCE;
    (void)values;
    return (fmi3Status)model_reject_vrs(m, "fmi3GetClock", vr, nvr);
}

FGW_EXPORT fmi3Status fmi3SetClock(fmi3Instance instance, const fmi3ValueReference vr[],
                                   size_t nvr, const fmi3Clock values[]) {
    INSTANCE;
    (void)values;
    return (fmi3Status)model_reject_vrs(m, "fmi3SetClock", vr, nvr);
}

/* ------------------------------------------------------------------------ dependencies */

FGW_EXPORT fmi3Status fmi3GetNumberOfVariableDependencies(fmi3Instance instance,
                                                          fmi3ValueReference vr,
                                                          size_t *nDependencies) {
    (void)vr;
    (void)nDependencies;
    return unsupported(instance, "fmi3GetNumberOfVariableDependencies");
}

FGW_EXPORT fmi3Status fmi3GetVariableDependencies(fmi3Instance instance, fmi3ValueReference dependent,
                                                  size_t elementIndicesOfDependent[],
                                                  fmi3ValueReference independents[],
                                                  size_t elementIndicesOfIndependents[],
                                                  fmi3DependencyKind dependencyKinds[],
                                                  size_t nDependencies) {
    (void)dependent;
    (void)elementIndicesOfDependent;
    (void)independents;
    (void)elementIndicesOfIndependents;
    (void)dependencyKinds;
    (void)nDependencies;
    return unsupported(instance, "fmi3GetVariableDependencies");
}

/* ------------------------------------------------------------------------------- FMU state */

FGW_EXPORT fmi3Status fmi3GetFMUState(fmi3Instance instance, fmi3FMUState *FMUState) {
    INSTANCE;
    if (!FMUState) return fmi3Error;
    if (*FMUState) {
        free(*FMUState);
        *FMUState = NULL;
    }
    *FMUState = model_state_save(m);
    return *FMUState ? fmi3OK : fmi3Error;
}

FGW_EXPORT fmi3Status fmi3SetFMUState(fmi3Instance instance, fmi3FMUState FMUState) {
    INSTANCE;
    if (!FMUState) return fmi3Error;
    model_state_restore(m, FMUState);
    return fmi3OK;
}

FGW_EXPORT fmi3Status fmi3FreeFMUState(fmi3Instance instance, fmi3FMUState *FMUState) {
    INSTANCE;
    if (FMUState && *FMUState) {
        free(*FMUState);
        *FMUState = NULL;
    }
    return fmi3OK;
}

FGW_EXPORT fmi3Status fmi3SerializedFMUStateSize(fmi3Instance instance, fmi3FMUState FMUState,
                                                 size_t *size) {
    INSTANCE;
    if (!FMUState || !size) return fmi3Error;
    *size = model_state_serialized_size();
    return fmi3OK;
}

FGW_EXPORT fmi3Status fmi3SerializeFMUState(fmi3Instance instance, fmi3FMUState FMUState,
                                            fmi3Byte serializedState[], size_t size) {
    INSTANCE;
    if (!FMUState || !serializedState || size < model_state_serialized_size()) {
        model_log(m, ST_ERROR, "logStatusError", "fmi3SerializeFMUState: buffer too small.");
        return fmi3Error;
    }
    model_state_serialize(FMUState, serializedState);
    return fmi3OK;
}

FGW_EXPORT fmi3Status fmi3DeserializeFMUState(fmi3Instance instance,
                                              const fmi3Byte serializedState[], size_t size,
                                              fmi3FMUState *FMUState) {
    INSTANCE;
    if (!serializedState || !FMUState) return fmi3Error;
    *FMUState = model_state_deserialize(m, serializedState, size);
    return *FMUState ? fmi3OK : fmi3Error;
}

/* ------------------------------------------------------------------- partial derivatives */

FGW_EXPORT fmi3Status fmi3GetDirectionalDerivative(
    fmi3Instance instance, const fmi3ValueReference unknowns[], size_t nUnknowns,
    const fmi3ValueReference knowns[], size_t nKnowns, const fmi3Float64 seed[], size_t nSeed,
    fmi3Float64 sensitivity[], size_t nSensitivity) {
    (void)unknowns;
    (void)nUnknowns;
    (void)knowns;
    (void)nKnowns;
    (void)seed;
    (void)nSeed;
    (void)sensitivity;
    (void)nSensitivity;
    return unsupported(instance, "fmi3GetDirectionalDerivative");
}

FGW_EXPORT fmi3Status fmi3GetAdjointDerivative(
    fmi3Instance instance, const fmi3ValueReference unknowns[], size_t nUnknowns,
    const fmi3ValueReference knowns[], size_t nKnowns, const fmi3Float64 seed[], size_t nSeed,
    fmi3Float64 sensitivity[], size_t nSensitivity) {
    (void)unknowns;
    (void)nUnknowns;
    (void)knowns;
    (void)nKnowns;
    (void)seed;
    (void)nSeed;
    (void)sensitivity;
    (void)nSensitivity;
    return unsupported(instance, "fmi3GetAdjointDerivative");
}

/* ---------------------------------------------------------- configuration mode and clocks */

FGW_EXPORT fmi3Status fmi3EnterConfigurationMode(fmi3Instance instance) {
    INSTANCE;
    return (fmi3Status)model_enter_configuration(m);
}

FGW_EXPORT fmi3Status fmi3ExitConfigurationMode(fmi3Instance instance) {
    INSTANCE;
    return (fmi3Status)model_exit_configuration(m);
}

FGW_EXPORT fmi3Status fmi3GetIntervalDecimal(fmi3Instance instance,
                                             const fmi3ValueReference vr[], size_t nvr,
                                             fmi3Float64 intervals[],
                                             fmi3IntervalQualifier qualifiers[]) {
    (void)vr;
    (void)nvr;
    (void)intervals;
    (void)qualifiers;
    return unsupported(instance, "fmi3GetIntervalDecimal");
}

FGW_EXPORT fmi3Status fmi3GetIntervalFraction(fmi3Instance instance,
                                              const fmi3ValueReference vr[], size_t nvr,
                                              fmi3UInt64 counters[], fmi3UInt64 resolutions[],
                                              fmi3IntervalQualifier qualifiers[]) {
    (void)vr;
    (void)nvr;
    (void)counters;
    (void)resolutions;
    (void)qualifiers;
    return unsupported(instance, "fmi3GetIntervalFraction");
}

FGW_EXPORT fmi3Status fmi3GetShiftDecimal(fmi3Instance instance, const fmi3ValueReference vr[],
                                          size_t nvr, fmi3Float64 shifts[]) {
    (void)vr;
    (void)nvr;
    (void)shifts;
    return unsupported(instance, "fmi3GetShiftDecimal");
}

FGW_EXPORT fmi3Status fmi3GetShiftFraction(fmi3Instance instance, const fmi3ValueReference vr[],
                                           size_t nvr, fmi3UInt64 counters[],
                                           fmi3UInt64 resolutions[]) {
    (void)vr;
    (void)nvr;
    (void)counters;
    (void)resolutions;
    return unsupported(instance, "fmi3GetShiftFraction");
}

FGW_EXPORT fmi3Status fmi3SetIntervalDecimal(fmi3Instance instance,
                                             const fmi3ValueReference vr[], size_t nvr,
                                             const fmi3Float64 intervals[]) {
    (void)vr;
    (void)nvr;
    (void)intervals;
    return unsupported(instance, "fmi3SetIntervalDecimal");
}

FGW_EXPORT fmi3Status fmi3SetIntervalFraction(fmi3Instance instance,
                                              const fmi3ValueReference vr[], size_t nvr,
                                              const fmi3UInt64 counters[],
                                              const fmi3UInt64 resolutions[]) {
    (void)vr;
    (void)nvr;
    (void)counters;
    (void)resolutions;
    return unsupported(instance, "fmi3SetIntervalFraction");
}

FGW_EXPORT fmi3Status fmi3SetShiftDecimal(fmi3Instance instance, const fmi3ValueReference vr[],
                                          size_t nvr, const fmi3Float64 shifts[]) {
    (void)vr;
    (void)nvr;
    (void)shifts;
    return unsupported(instance, "fmi3SetShiftDecimal");
}

FGW_EXPORT fmi3Status fmi3SetShiftFraction(fmi3Instance instance, const fmi3ValueReference vr[],
                                           size_t nvr, const fmi3UInt64 counters[],
                                           const fmi3UInt64 resolutions[]) {
    (void)vr;
    (void)nvr;
    (void)counters;
    (void)resolutions;
    return unsupported(instance, "fmi3SetShiftFraction");
}

FGW_EXPORT fmi3Status fmi3EvaluateDiscreteStates(fmi3Instance instance) {
    INSTANCE;
    (void)m;
    return fmi3OK; /* no clocked or discrete states that depend on inputs */
}

FGW_EXPORT fmi3Status fmi3UpdateDiscreteStates(fmi3Instance instance,
                                               fmi3Boolean *discreteStatesNeedUpdate,
                                               fmi3Boolean *terminateSimulation,
                                               fmi3Boolean *nominalsOfContinuousStatesChanged,
                                               fmi3Boolean *valuesOfContinuousStatesChanged,
                                               fmi3Boolean *nextEventTimeDefined,
                                               fmi3Float64 *nextEventTime) {
    INSTANCE;
    bool changed = false;
    Status status = model_update_discrete_states(m, &changed);
    if (discreteStatesNeedUpdate) *discreteStatesNeedUpdate = false;
    if (terminateSimulation) *terminateSimulation = false;
    if (nominalsOfContinuousStatesChanged) *nominalsOfContinuousStatesChanged = false;
    if (valuesOfContinuousStatesChanged) *valuesOfContinuousStatesChanged = changed;
    if (nextEventTimeDefined) *nextEventTimeDefined = false;
    if (nextEventTime) *nextEventTime = 0;
    return (fmi3Status)status;
}

/* ---------------------------------------------------------------------------- Model Exchange */

FGW_EXPORT fmi3Status fmi3EnterContinuousTimeMode(fmi3Instance instance) {
    INSTANCE;
    return (fmi3Status)model_enter_continuous_time_mode(m);
}

FGW_EXPORT fmi3Status fmi3CompletedIntegratorStep(fmi3Instance instance,
                                                  fmi3Boolean noSetFMUStatePriorToCurrentPoint,
                                                  fmi3Boolean *enterEventMode,
                                                  fmi3Boolean *terminateSimulation) {
    INSTANCE;
    (void)noSetFMUStatePriorToCurrentPoint;
    if (!model_check_mode(m, "fmi3CompletedIntegratorStep", M(MODE_CONTINUOUS_TIME)))
        return fmi3Error;
    if (enterEventMode) *enterEventMode = false;
    if (terminateSimulation) *terminateSimulation = false;
    return fmi3OK;
}

FGW_EXPORT fmi3Status fmi3SetTime(fmi3Instance instance, fmi3Float64 time) {
    INSTANCE;
    return (fmi3Status)model_set_time(m, time);
}

FGW_EXPORT fmi3Status fmi3SetContinuousStates(fmi3Instance instance,
                                              const fmi3Float64 continuousStates[],
                                              size_t nContinuousStates) {
    INSTANCE;
    return (fmi3Status)model_set_states(m, continuousStates, nContinuousStates);
}

FGW_EXPORT fmi3Status fmi3GetContinuousStateDerivatives(fmi3Instance instance,
                                                        fmi3Float64 derivatives[],
                                                        size_t nContinuousStates) {
    INSTANCE;
    return (fmi3Status)model_get_derivatives(m, derivatives, nContinuousStates);
}

FGW_EXPORT fmi3Status fmi3GetEventIndicators(fmi3Instance instance,
                                             fmi3Float64 eventIndicators[],
                                             size_t nEventIndicators) {
    INSTANCE;
    return (fmi3Status)model_get_event_indicators(m, eventIndicators, nEventIndicators);
}

FGW_EXPORT fmi3Status fmi3GetContinuousStates(fmi3Instance instance,
                                              fmi3Float64 continuousStates[],
                                              size_t nContinuousStates) {
    INSTANCE;
    return (fmi3Status)model_get_states(m, continuousStates, nContinuousStates);
}

FGW_EXPORT fmi3Status fmi3GetNominalsOfContinuousStates(fmi3Instance instance,
                                                        fmi3Float64 nominals[],
                                                        size_t nContinuousStates) {
    INSTANCE;
    return (fmi3Status)model_get_nominals(m, nominals, nContinuousStates);
}

FGW_EXPORT fmi3Status fmi3GetNumberOfEventIndicators(fmi3Instance instance,
                                                     size_t *nEventIndicators) {
    INSTANCE;
    (void)m;
    if (!nEventIndicators) return fmi3Error;
    *nEventIndicators = MODEL.nz;
    return fmi3OK;
}

FGW_EXPORT fmi3Status fmi3GetNumberOfContinuousStates(fmi3Instance instance,
                                                      size_t *nContinuousStates) {
    INSTANCE;
    if (!nContinuousStates) return fmi3Error;
    *nContinuousStates = model_nx(&m->d);
    return fmi3OK;
}

/* ----------------------------------------------------------------------------- Co-Simulation */

FGW_EXPORT fmi3Status fmi3EnterStepMode(fmi3Instance instance) {
    INSTANCE;
    return (fmi3Status)model_enter_step_mode(m);
}

FGW_EXPORT fmi3Status fmi3GetOutputDerivatives(fmi3Instance instance,
                                               const fmi3ValueReference vr[], size_t nvr,
                                               const fmi3Int32 order[], fmi3Float64 values[],
                                               size_t nValues) {
    (void)vr;
    (void)nvr;
    (void)order;
    (void)values;
    (void)nValues;
    return unsupported(instance, "fmi3GetOutputDerivatives");
}

FGW_EXPORT fmi3Status fmi3DoStep(fmi3Instance instance, fmi3Float64 currentCommunicationPoint,
                                 fmi3Float64 communicationStepSize,
                                 fmi3Boolean noSetFMUStatePriorToCurrentPoint,
                                 fmi3Boolean *eventHandlingNeeded,
                                 fmi3Boolean *terminateSimulation, fmi3Boolean *earlyReturn,
                                 fmi3Float64 *lastSuccessfulTime) {
    INSTANCE;
    (void)noSetFMUStatePriorToCurrentPoint;
    if (m->interface != IF_CO_SIMULATION) {
        model_log(m, ST_ERROR, "logStatusError", "fmi3DoStep is only available in Co-Simulation.");
        return fmi3Error;
    }
    /* With Event Mode and early return the FMU stops at a state event and lets the importer
       handle it in Event Mode; otherwise events are handled inside the step. */
    bool stop_at_event = m->event_mode_used && m->early_return_allowed;
    bool event_found = false;
    Status status = model_do_step(m, currentCommunicationPoint, communicationStepSize,
                                  stop_at_event, &event_found);
    if (eventHandlingNeeded) *eventHandlingNeeded = event_found;
    if (terminateSimulation) *terminateSimulation = false;
    if (earlyReturn) *earlyReturn = event_found;
    if (lastSuccessfulTime) *lastSuccessfulTime = m->d.time;
    return (fmi3Status)status;
}

FGW_EXPORT fmi3Status fmi3ActivateModelPartition(fmi3Instance instance,
                                                 fmi3ValueReference clockReference,
                                                 fmi3Float64 activationTime) {
    (void)clockReference;
    (void)activationTime;
    return unsupported(instance, "fmi3ActivateModelPartition");
}
