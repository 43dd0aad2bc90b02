/* FMI 2.0 API of the FMU Gateway demo models: maps the standard functions onto model.h. */
#include "fmi2_defs.h"
#include "model.h"

#include <stdlib.h>
#include <string.h>

#ifndef INSTANTIATION_TOKEN
#error "INSTANTIATION_TOKEN must be defined (the build passes it with -D)"
#endif

/* The importer's callback struct may live on its stack: keep a copy. */
typedef struct {
    fmi2CallbackFunctions functions;
} Glue;

static void forward_log(void *instance, Status status, const char *category,
                        const char *message) {
    Instance *m = instance;
    Glue *glue = m->glue;
    /* the logger takes a printf format: pass the message as an argument, never as the format */
    if (glue && glue->functions.logger)
        glue->functions.logger(glue->functions.componentEnvironment, m->instance_name,
                               (fmi2Status)status, category, "%s", message);
}

#define INSTANCE                                                                               \
    Instance *m = (Instance *)c;                                                               \
    if (!m) return fmi2Error

static fmi2Status unsupported(fmi2Component c, const char *function) {
    INSTANCE;
    model_log(m, ST_ERROR, "logStatusError", "%s is not supported by this FMU.", function);
    return fmi2Error;
}

/* ------------------------------------------------------------------ inquire, create, destroy */

FGW_EXPORT const char *fmi2GetTypesPlatform(void) { return "default"; }

FGW_EXPORT const char *fmi2GetVersion(void) { return "2.0"; }

FGW_EXPORT fmi2Status fmi2SetDebugLogging(fmi2Component c, fmi2Boolean loggingOn,
                                          size_t nCategories, const fmi2String categories[]) {
    INSTANCE;
    return (fmi2Status)model_set_debug_logging(m, loggingOn != fmi2False, nCategories, categories);
}

FGW_EXPORT fmi2Component fmi2Instantiate(fmi2String instanceName, fmi2Type fmuType,
                                         fmi2String fmuGUID, fmi2String fmuResourceLocation,
                                         const fmi2CallbackFunctions *functions,
                                         fmi2Boolean visible, fmi2Boolean loggingOn) {
    (void)fmuResourceLocation;
    (void)visible;
    if (!functions || !functions->logger) return NULL;
    if (!fmuGUID || strcmp(fmuGUID, INSTANTIATION_TOKEN) != 0) {
        functions->logger(functions->componentEnvironment, instanceName, fmi2Error,
                          "logStatusError", "%s",
                          "The GUID does not match this FMU (expected " INSTANTIATION_TOKEN ").");
        return NULL;
    }
    if (fmuType != fmi2ModelExchange && fmuType != fmi2CoSimulation) {
        functions->logger(functions->componentEnvironment, instanceName, fmi2Error,
                          "logStatusError", "%s", "Unknown fmuType.");
        return NULL;
    }
    Glue *glue = calloc(1, sizeof *glue);
    if (!glue) return NULL;
    glue->functions = *functions;
    Interface interface = fmuType == fmi2CoSimulation ? IF_CO_SIMULATION : IF_MODEL_EXCHANGE;
    Instance *m = model_new(instanceName, interface, loggingOn != fmi2False, forward_log, glue);
    if (!m) free(glue);
    return m;
}

FGW_EXPORT void fmi2FreeInstance(fmi2Component c) { model_free((Instance *)c); }

/* ---------------------------------------------------------- initialization, termination, reset */

FGW_EXPORT fmi2Status fmi2SetupExperiment(fmi2Component c, fmi2Boolean toleranceDefined,
                                          fmi2Real tolerance, fmi2Real startTime,
                                          fmi2Boolean stopTimeDefined, fmi2Real stopTime) {
    INSTANCE;
    (void)toleranceDefined;
    (void)tolerance;
    (void)stopTimeDefined;
    (void)stopTime;
    if (!model_check_mode(m, "fmi2SetupExperiment", M(MODE_INSTANTIATED))) return fmi2Error;
    m->d.time = startTime;
    m->d.v[0] = startTime;
    return fmi2OK;
}

FGW_EXPORT fmi2Status fmi2EnterInitializationMode(fmi2Component c) {
    INSTANCE;
    return (fmi2Status)model_enter_initialization(m, m->d.time);
}

FGW_EXPORT fmi2Status fmi2ExitInitializationMode(fmi2Component c) {
    INSTANCE;
    return (fmi2Status)model_exit_initialization(m);
}

FGW_EXPORT fmi2Status fmi2Terminate(fmi2Component c) {
    INSTANCE;
    return (fmi2Status)model_terminate(m);
}

FGW_EXPORT fmi2Status fmi2Reset(fmi2Component c) {
    INSTANCE;
    model_reset(m);
    return fmi2OK;
}

/* ------------------------------------------------------------------------ getting and setting */

FGW_EXPORT fmi2Status fmi2GetReal(fmi2Component c, const fmi2ValueReference vr[], size_t nvr,
                                  fmi2Real value[]) {
    INSTANCE;
    return (fmi2Status)model_get_float(m, vr, nvr, value);
}

FGW_EXPORT fmi2Status fmi2SetReal(fmi2Component c, const fmi2ValueReference vr[], size_t nvr,
                                  const fmi2Real value[]) {
    INSTANCE;
    return (fmi2Status)model_set_float(m, vr, nvr, value);
}

/* Integer (Int32 and Enumeration variables), Boolean and String: each converts between its C
   type and the core's Value. A set checks every value before it stores any, so a call that
   fails changes nothing. */
#define GET_TYPED(NAME, CTYPE, VTYPE, CONVERT)                                                 \
    FGW_EXPORT fmi2Status NAME(fmi2Component c, const fmi2ValueReference vr[], size_t nvr,     \
                               CTYPE value[]) {                                                \
        INSTANCE;                                                                              \
        if (nvr > 0 && (!vr || !value)) return fmi2Error;                                      \
        model_values_changed(m);                                                               \
        for (size_t k = 0; k < nvr; k++) {                                                     \
            Value v;                                                                           \
            if (model_get_value(m, #NAME, VTYPE, vr[k], &v) != ST_OK) return fmi2Error;        \
            value[k] = CONVERT;                                                                \
        }                                                                                      \
        return fmi2OK;                                                                         \
    }
#define SET_TYPED(NAME, CTYPE, VTYPE, CONVERT)                                                 \
    FGW_EXPORT fmi2Status NAME(fmi2Component c, const fmi2ValueReference vr[], size_t nvr,     \
                               const CTYPE value[]) {                                          \
        INSTANCE;                                                                              \
        if (nvr > 0 && (!vr || !value)) return fmi2Error;                                      \
        for (size_t k = 0; k < nvr; k++) {                                                     \
            const CTYPE x = value[k];                                                          \
            if (model_check_set(m, #NAME, VTYPE, vr[k], CONVERT) != ST_OK) return fmi2Error;   \
        }                                                                                      \
        for (size_t k = 0; k < nvr; k++) {                                                     \
            const CTYPE x = value[k];                                                          \
            model_store(m, vr[k], CONVERT);                                                    \
        }                                                                                      \
        model_values_changed(m);                                                               \
        return fmi2OK;                                                                         \
    }

GET_TYPED(fmi2GetInteger, fmi2Integer, T_INT32, (fmi2Integer)v.i)
GET_TYPED(fmi2GetBoolean, fmi2Boolean, T_BOOLEAN, v.i ? fmi2True : fmi2False)
/* the string points into the instance: valid until the variable is set again */
GET_TYPED(fmi2GetString, fmi2String, T_STRING, (fmi2String)v.text.bytes)
SET_TYPED(fmi2SetInteger, fmi2Integer, T_INT32, ((Value){.i = x}))
SET_TYPED(fmi2SetBoolean, fmi2Boolean, T_BOOLEAN, ((Value){.i = x != fmi2False}))
SET_TYPED(fmi2SetString, fmi2String, T_STRING,
          ((Value){.text = {(const unsigned char *)x, x ? strlen(x) + 1 : 0}}))

/* ------------------------------------------------------------------------------- FMU state */

FGW_EXPORT fmi2Status fmi2GetFMUstate(fmi2Component c, fmi2FMUstate *FMUstate) {
    INSTANCE;
    if (!FMUstate) return fmi2Error;
    if (*FMUstate) {
        free(*FMUstate);
        *FMUstate = NULL;
    }
    *FMUstate = model_state_save(m);
    return *FMUstate ? fmi2OK : fmi2Error;
}

FGW_EXPORT fmi2Status fmi2SetFMUstate(fmi2Component c, fmi2FMUstate FMUstate) {
    INSTANCE;
    if (!FMUstate) return fmi2Error;
    model_state_restore(m, FMUstate);
    return fmi2OK;
}

FGW_EXPORT fmi2Status fmi2FreeFMUstate(fmi2Component c, fmi2FMUstate *FMUstate) {
    INSTANCE;
    (void)m;
    if (FMUstate && *FMUstate) {
        free(*FMUstate);
        *FMUstate = NULL;
    }
    return fmi2OK;
}

FGW_EXPORT fmi2Status fmi2SerializedFMUstateSize(fmi2Component c, fmi2FMUstate FMUstate,
                                                 size_t *size) {
    INSTANCE;
    (void)m;
    if (!FMUstate || !size) return fmi2Error;
    *size = model_state_serialized_size();
    return fmi2OK;
}

FGW_EXPORT fmi2Status fmi2SerializeFMUstate(fmi2Component c, fmi2FMUstate FMUstate,
                                            fmi2Byte serializedState[], size_t size) {
    INSTANCE;
    if (!FMUstate || !serializedState || size < model_state_serialized_size()) {
        model_log(m, ST_ERROR, "logStatusError", "fmi2SerializeFMUstate: buffer too small.");
        return fmi2Error;
    }
    model_state_serialize(FMUstate, (unsigned char *)serializedState);
    return fmi2OK;
}

FGW_EXPORT fmi2Status fmi2DeSerializeFMUstate(fmi2Component c, const fmi2Byte serializedState[],
                                              size_t size, fmi2FMUstate *FMUstate) {
    INSTANCE;
    if (!serializedState || !FMUstate) return fmi2Error;
    *FMUstate = model_state_deserialize(m, (const unsigned char *)serializedState, size);
    return *FMUstate ? fmi2OK : fmi2Error;
}

FGW_EXPORT fmi2Status fmi2GetDirectionalDerivative(fmi2Component c,
                                                   const fmi2ValueReference vUnknown_ref[],
                                                   size_t nUnknown,
                                                   const fmi2ValueReference vKnown_ref[],
                                                   size_t nKnown, const fmi2Real dvKnown[],
                                                   fmi2Real dvUnknown[]) {
    (void)vUnknown_ref;
    (void)nUnknown;
    (void)vKnown_ref;
    (void)nKnown;
    (void)dvKnown;
    (void)dvUnknown;
    return unsupported(c, "fmi2GetDirectionalDerivative");
}

/* ---------------------------------------------------------------------------- Model Exchange */

FGW_EXPORT fmi2Status fmi2EnterEventMode(fmi2Component c) {
    INSTANCE;
    return (fmi2Status)model_enter_event_mode(m);
}

FGW_EXPORT fmi2Status fmi2NewDiscreteStates(fmi2Component c, fmi2EventInfo *eventInfo) {
    INSTANCE;
    bool changed = false;
    Status status = model_update_discrete_states(m, &changed);
    if (eventInfo) {
        eventInfo->newDiscreteStatesNeeded = fmi2False;
        eventInfo->terminateSimulation = fmi2False;
        eventInfo->nominalsOfContinuousStatesChanged = fmi2False;
        eventInfo->valuesOfContinuousStatesChanged = changed ? fmi2True : fmi2False;
        eventInfo->nextEventTimeDefined = fmi2False;
        eventInfo->nextEventTime = 0;
    }
    return (fmi2Status)status;
}

FGW_EXPORT fmi2Status fmi2EnterContinuousTimeMode(fmi2Component c) {
    INSTANCE;
    return (fmi2Status)model_enter_continuous_time_mode(m);
}

FGW_EXPORT fmi2Status fmi2CompletedIntegratorStep(fmi2Component c,
                                                  fmi2Boolean noSetFMUStatePriorToCurrentPoint,
                                                  fmi2Boolean *enterEventMode,
                                                  fmi2Boolean *terminateSimulation) {
    INSTANCE;
    (void)noSetFMUStatePriorToCurrentPoint;
    if (!model_check_mode(m, "fmi2CompletedIntegratorStep", M(MODE_CONTINUOUS_TIME)))
        return fmi2Error;
    if (enterEventMode) *enterEventMode = fmi2False;
    if (terminateSimulation) *terminateSimulation = fmi2False;
    return fmi2OK;
}

FGW_EXPORT fmi2Status fmi2SetTime(fmi2Component c, fmi2Real time) {
    INSTANCE;
    return (fmi2Status)model_set_time(m, time);
}

FGW_EXPORT fmi2Status fmi2SetContinuousStates(fmi2Component c, const fmi2Real x[], size_t nx) {
    INSTANCE;
    return (fmi2Status)model_set_states(m, x, nx);
}

FGW_EXPORT fmi2Status fmi2GetDerivatives(fmi2Component c, fmi2Real derivatives[], size_t nx) {
    INSTANCE;
    return (fmi2Status)model_get_derivatives(m, derivatives, nx);
}

FGW_EXPORT fmi2Status fmi2GetEventIndicators(fmi2Component c, fmi2Real eventIndicators[],
                                             size_t ni) {
    INSTANCE;
    return (fmi2Status)model_get_event_indicators(m, eventIndicators, ni);
}

FGW_EXPORT fmi2Status fmi2GetContinuousStates(fmi2Component c, fmi2Real x[], size_t nx) {
    INSTANCE;
    return (fmi2Status)model_get_states(m, x, nx);
}

FGW_EXPORT fmi2Status fmi2GetNominalsOfContinuousStates(fmi2Component c, fmi2Real x_nominal[],
                                                        size_t nx) {
    INSTANCE;
    return (fmi2Status)model_get_nominals(m, x_nominal, nx);
}

/* ----------------------------------------------------------------------------- Co-Simulation */

FGW_EXPORT fmi2Status fmi2SetRealInputDerivatives(fmi2Component c, const fmi2ValueReference vr[],
                                                  size_t nvr, const fmi2Integer order[],
                                                  const fmi2Real value[]) {
    (void)vr;
    (void)nvr;
    (void)order;
    (void)value;
    return unsupported(c, "fmi2SetRealInputDerivatives");
}

FGW_EXPORT fmi2Status fmi2GetRealOutputDerivatives(fmi2Component c,
                                                   const fmi2ValueReference vr[], size_t nvr,
                                                   const fmi2Integer order[], fmi2Real value[]) {
    (void)vr;
    (void)nvr;
    (void)order;
    (void)value;
    return unsupported(c, "fmi2GetRealOutputDerivatives");
}

FGW_EXPORT fmi2Status fmi2DoStep(fmi2Component c, fmi2Real currentCommunicationPoint,
                                 fmi2Real communicationStepSize,
                                 fmi2Boolean noSetFMUStatePriorToCurrentPoint) {
    INSTANCE;
    (void)noSetFMUStatePriorToCurrentPoint;
    if (m->interface != IF_CO_SIMULATION) {
        model_log(m, ST_ERROR, "logStatusError", "fmi2DoStep is only available in Co-Simulation.");
        return fmi2Error;
    }
    bool event_found = false;
    return (fmi2Status)model_do_step(m, currentCommunicationPoint, communicationStepSize, false,
                                     &event_found);
}

FGW_EXPORT fmi2Status fmi2CancelStep(fmi2Component c) {
    return unsupported(c, "fmi2CancelStep (fmi2DoStep never returns fmi2Pending)");
}

FGW_EXPORT fmi2Status fmi2GetStatus(fmi2Component c, const fmi2StatusKind s, fmi2Status *value) {
    INSTANCE;
    (void)m;
    if (s == fmi2DoStepStatus && value) {
        *value = fmi2OK; /* doStep is synchronous */
        return fmi2OK;
    }
    return fmi2Discard;
}

FGW_EXPORT fmi2Status fmi2GetRealStatus(fmi2Component c, const fmi2StatusKind s,
                                        fmi2Real *value) {
    INSTANCE;
    if (s == fmi2LastSuccessfulTime && value) {
        *value = m->last_successful_time;
        return fmi2OK;
    }
    return fmi2Discard;
}

FGW_EXPORT fmi2Status fmi2GetIntegerStatus(fmi2Component c, const fmi2StatusKind s,
                                           fmi2Integer *value) {
    INSTANCE;
    (void)m;
    (void)s;
    (void)value;
    return fmi2Discard;
}

FGW_EXPORT fmi2Status fmi2GetBooleanStatus(fmi2Component c, const fmi2StatusKind s,
                                           fmi2Boolean *value) {
    INSTANCE;
    (void)m;
    if (s == fmi2Terminated && value) {
        *value = fmi2False;
        return fmi2OK;
    }
    return fmi2Discard;
}

FGW_EXPORT fmi2Status fmi2GetStringStatus(fmi2Component c, const fmi2StatusKind s,
                                          fmi2String *value) {
    INSTANCE;
    (void)m;
    (void)s;
    (void)value;
    return fmi2Discard;
}
