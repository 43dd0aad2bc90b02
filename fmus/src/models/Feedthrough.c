/* Feedthrough: for every variable type an input and an output that equals it, named as in the
 * Modelica Association's Reference FMUs so that users recognise it. FMI 3.0 has every type
 * (Float32 ... UInt64, Boolean, String, Binary, Enumeration); FMI 2.0 has Real, Integer,
 * Boolean, Enumeration and, since FMI 2.0 strings cannot be inputs, a String parameter. The
 * start values differ from their type's zero (and reach beyond the signed range for unsigned
 * types), so an output at t = 0 proves the value went through. No continuous states. */
#include "model.h"

#define OPTION_1 1 /* Enumeration items "Option 1" and "Option 2" */
#define OPTION_2 2

#ifdef FGW_FMI2

enum {
    VR_TIME,
    VR_F64_CONT_IN, VR_F64_CONT_OUT,
    VR_F64_DISC_IN, VR_F64_DISC_OUT,
    VR_INT32_IN, VR_INT32_OUT,
    VR_BOOLEAN_IN, VR_BOOLEAN_OUT,
    VR_STRING_PARAMETER, VR_STRING_OUT,
    VR_ENUM_IN, VR_ENUM_OUT,
    VR_FIXED, VR_TUNABLE,
    N_VARS
};

static const VarSpec vars[N_VARS] = {
    [VR_TIME] = {"time", K_TIME, 0},
    [VR_F64_CONT_IN] = {"Float64_continuous_input", K_INPUT_CONTINUOUS, 3.25},
    [VR_F64_CONT_OUT] = {"Float64_continuous_output", K_OUTPUT_CALCULATED, 0},
    [VR_F64_DISC_IN] = {"Float64_discrete_input", K_INPUT_DISCRETE, 4.5},
    [VR_F64_DISC_OUT] = {"Float64_discrete_output", K_OUTPUT_CALCULATED, 0},
    [VR_INT32_IN] = {"Int32_input", K_INPUT_DISCRETE, -2000000000, T_INT32},
    [VR_INT32_OUT] = {"Int32_output", K_OUTPUT_CALCULATED, 0, T_INT32},
    [VR_BOOLEAN_IN] = {"Boolean_input", K_INPUT_DISCRETE, 1, T_BOOLEAN},
    [VR_BOOLEAN_OUT] = {"Boolean_output", K_OUTPUT_CALCULATED, 0, T_BOOLEAN},
    [VR_STRING_PARAMETER] = {"String_parameter", K_PARAMETER_FIXED, 0, T_STRING,
                             "Hello, FMU Gateway & <friends>"},
    [VR_STRING_OUT] = {"String_output", K_OUTPUT_CALCULATED, 0, T_STRING},
    [VR_ENUM_IN] = {"Enumeration_input", K_INPUT_DISCRETE, OPTION_2, T_ENUMERATION,
                    .bounded = true, .min = OPTION_1, .max = OPTION_2},
    [VR_ENUM_OUT] = {"Enumeration_output", K_OUTPUT_CALCULATED, OPTION_1, T_ENUMERATION},
    [VR_FIXED] = {"Float64_fixed_parameter", K_PARAMETER_FIXED, 1.5, .bounded = true,
                  .min = -10, .max = 10},
    [VR_TUNABLE] = {"Float64_tunable_parameter", K_PARAMETER_TUNABLE, 2.5, .bounded = true,
                    .min = -10, .max = 10},
};

static const unsigned pairs[][2] = {
    {VR_F64_CONT_IN, VR_F64_CONT_OUT}, {VR_F64_DISC_IN, VR_F64_DISC_OUT},
    {VR_INT32_IN, VR_INT32_OUT},       {VR_BOOLEAN_IN, VR_BOOLEAN_OUT},
    {VR_STRING_PARAMETER, VR_STRING_OUT}, {VR_ENUM_IN, VR_ENUM_OUT},
};

#else

enum {
    VR_TIME,
    VR_F32_CONT_IN, VR_F32_CONT_OUT,
    VR_F32_DISC_IN, VR_F32_DISC_OUT,
    VR_F64_CONT_IN, VR_F64_CONT_OUT,
    VR_F64_DISC_IN, VR_F64_DISC_OUT,
    VR_INT8_IN, VR_INT8_OUT,
    VR_UINT8_IN, VR_UINT8_OUT,
    VR_INT16_IN, VR_INT16_OUT,
    VR_UINT16_IN, VR_UINT16_OUT,
    VR_INT32_IN, VR_INT32_OUT,
    VR_UINT32_IN, VR_UINT32_OUT,
    VR_INT64_IN, VR_INT64_OUT,
    VR_UINT64_IN, VR_UINT64_OUT,
    VR_BOOLEAN_IN, VR_BOOLEAN_OUT,
    VR_STRING_IN, VR_STRING_OUT,
    VR_BINARY_IN, VR_BINARY_OUT,
    VR_ENUM_IN, VR_ENUM_OUT,
    VR_FIXED, VR_TUNABLE,
    N_VARS
};

/* Int64 and UInt64 starts are exact in a double: 9e18 = 9 * 2^18 * 5^18. */
static const VarSpec vars[N_VARS] = {
    [VR_TIME] = {"time", K_TIME, 0},
    [VR_F32_CONT_IN] = {"Float32_continuous_input", K_INPUT_CONTINUOUS, 1.25, T_FLOAT32},
    [VR_F32_CONT_OUT] = {"Float32_continuous_output", K_OUTPUT_CALCULATED, 0, T_FLOAT32},
    [VR_F32_DISC_IN] = {"Float32_discrete_input", K_INPUT_DISCRETE, 2.75, T_FLOAT32},
    [VR_F32_DISC_OUT] = {"Float32_discrete_output", K_OUTPUT_CALCULATED, 0, T_FLOAT32},
    [VR_F64_CONT_IN] = {"Float64_continuous_input", K_INPUT_CONTINUOUS, 3.25},
    [VR_F64_CONT_OUT] = {"Float64_continuous_output", K_OUTPUT_CALCULATED, 0},
    [VR_F64_DISC_IN] = {"Float64_discrete_input", K_INPUT_DISCRETE, 4.5},
    [VR_F64_DISC_OUT] = {"Float64_discrete_output", K_OUTPUT_CALCULATED, 0},
    [VR_INT8_IN] = {"Int8_input", K_INPUT_DISCRETE, -100, T_INT8},
    [VR_INT8_OUT] = {"Int8_output", K_OUTPUT_CALCULATED, 0, T_INT8},
    [VR_UINT8_IN] = {"UInt8_input", K_INPUT_DISCRETE, 200, T_UINT8},
    [VR_UINT8_OUT] = {"UInt8_output", K_OUTPUT_CALCULATED, 0, T_UINT8},
    [VR_INT16_IN] = {"Int16_input", K_INPUT_DISCRETE, -30000, T_INT16},
    [VR_INT16_OUT] = {"Int16_output", K_OUTPUT_CALCULATED, 0, T_INT16},
    [VR_UINT16_IN] = {"UInt16_input", K_INPUT_DISCRETE, 60000, T_UINT16},
    [VR_UINT16_OUT] = {"UInt16_output", K_OUTPUT_CALCULATED, 0, T_UINT16},
    [VR_INT32_IN] = {"Int32_input", K_INPUT_DISCRETE, -2000000000, T_INT32},
    [VR_INT32_OUT] = {"Int32_output", K_OUTPUT_CALCULATED, 0, T_INT32},
    [VR_UINT32_IN] = {"UInt32_input", K_INPUT_DISCRETE, 4000000000, T_UINT32},
    [VR_UINT32_OUT] = {"UInt32_output", K_OUTPUT_CALCULATED, 0, T_UINT32},
    [VR_INT64_IN] = {"Int64_input", K_INPUT_DISCRETE, -9e18, T_INT64},
    [VR_INT64_OUT] = {"Int64_output", K_OUTPUT_CALCULATED, 0, T_INT64},
    [VR_UINT64_IN] = {"UInt64_input", K_INPUT_DISCRETE, 18e18, T_UINT64},
    [VR_UINT64_OUT] = {"UInt64_output", K_OUTPUT_CALCULATED, 0, T_UINT64},
    [VR_BOOLEAN_IN] = {"Boolean_input", K_INPUT_DISCRETE, 1, T_BOOLEAN},
    [VR_BOOLEAN_OUT] = {"Boolean_output", K_OUTPUT_CALCULATED, 0, T_BOOLEAN},
    [VR_STRING_IN] = {"String_input", K_INPUT_DISCRETE, 0, T_STRING,
                      "Hello, FMU Gateway & <friends>"},
    [VR_STRING_OUT] = {"String_output", K_OUTPUT_CALCULATED, 0, T_STRING},
    /* a NUL and a byte above 0x7f: binary, not text */
    [VR_BINARY_IN] = {"Binary_input", K_INPUT_DISCRETE, 0, T_BINARY, "\x00\xff\x10\x42", 4},
    [VR_BINARY_OUT] = {"Binary_output", K_OUTPUT_CALCULATED, 0, T_BINARY},
    [VR_ENUM_IN] = {"Enumeration_input", K_INPUT_DISCRETE, OPTION_2, T_ENUMERATION,
                    .bounded = true, .min = OPTION_1, .max = OPTION_2},
    [VR_ENUM_OUT] = {"Enumeration_output", K_OUTPUT_CALCULATED, OPTION_1, T_ENUMERATION},
    [VR_FIXED] = {"Float64_fixed_parameter", K_PARAMETER_FIXED, 1.5, .bounded = true,
                  .min = -10, .max = 10},
    [VR_TUNABLE] = {"Float64_tunable_parameter", K_PARAMETER_TUNABLE, 2.5, .bounded = true,
                    .min = -10, .max = 10},
};

static const unsigned pairs[][2] = {
    {VR_F32_CONT_IN, VR_F32_CONT_OUT}, {VR_F32_DISC_IN, VR_F32_DISC_OUT},
    {VR_F64_CONT_IN, VR_F64_CONT_OUT}, {VR_F64_DISC_IN, VR_F64_DISC_OUT},
    {VR_INT8_IN, VR_INT8_OUT},         {VR_UINT8_IN, VR_UINT8_OUT},
    {VR_INT16_IN, VR_INT16_OUT},       {VR_UINT16_IN, VR_UINT16_OUT},
    {VR_INT32_IN, VR_INT32_OUT},       {VR_UINT32_IN, VR_UINT32_OUT},
    {VR_INT64_IN, VR_INT64_OUT},       {VR_UINT64_IN, VR_UINT64_OUT},
    {VR_BOOLEAN_IN, VR_BOOLEAN_OUT},   {VR_STRING_IN, VR_STRING_OUT},
    {VR_BINARY_IN, VR_BINARY_OUT},     {VR_ENUM_IN, VR_ENUM_OUT},
};

#endif

static void outputs(ModelData *d) {
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++)
        model_copy_value(d, pairs[k][0], pairs[k][1]);
}

const ModelDef MODEL = {
    .name = "Feedthrough",
    .n_vars = N_VARS,
    .vars = vars,
    .nx = 0,
    .nz = 0,
    .breach_vr = -1,
    .outputs = outputs,
};
