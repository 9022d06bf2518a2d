// The parts of specstate._core, each defined in its own file.
#pragma once

#include <pybind11/pybind11.h>

namespace specstate::py_binding {

void bind_basics(pybind11::module_& m);     // module.cpp: geometry, inputs, digests
void bind_reference(pybind11::module_& m);  // reference.cpp: a trace followed event by event
void bind_handoff(pybind11::module_& m);    // handoff.cpp: the two sides of a PD handoff

}  // namespace specstate::py_binding
