# The Python the package is built for and the Python tests run with: SPECSTATE_PYTHON when
# given (setup.py gives the Python that runs pip), else the one CMake's FindPython finds first
# (an active virtual environment or conda environment, then PATH: a pyenv shim is followed to
# the interpreter it runs; outside an environment, one without NumPy gives way to Debian's
# /usr/bin/python3 when that has NumPy). Sets SPECSTATE_PYTHON (a normal variable, shadowing the cache entry)
# to the interpreter's own sys.executable, so that the module, its tests and its users agree.
#
# The package imports NumPy at run time: a Python without it is refused here, with the ways out,
# rather than built for and failing at `import specstate` ("No module named 'numpy'").
macro(specstate_find_python)
  if(SPECSTATE_PYTHON)
    set(_specstate_python_given "${SPECSTATE_PYTHON}")
    set(_specstate_python_how "SPECSTATE_PYTHON")
  else()
    find_package(Python3 3.9 COMPONENTS Interpreter)
    if(NOT Python3_EXECUTABLE)
      message(FATAL_ERROR "specstate: no Python >= 3.9 found; give one with -DSPECSTATE_PYTHON=PATH"
                          " or build without the package and tests (-DSPECSTATE_BUILD_PYTHON=OFF"
                          " -DSPECSTATE_BUILD_TESTS=OFF)")
    endif()
    set(_specstate_python_given "${Python3_EXECUTABLE}")
    set(_specstate_python_how "found first by FindPython: an active environment, then PATH")
    # Outside an active environment, a python3 first on PATH without NumPy (a bare pyenv
    # interpreter, say) gives way to Debian's, which tools/test provisions: plain
    # `cmake --preset ...` keeps building and testing on such a machine, and says so.
    if(NOT DEFINED ENV{VIRTUAL_ENV} AND NOT DEFINED ENV{CONDA_PREFIX}
       AND NOT _specstate_python_given STREQUAL "/usr/bin/python3"
       AND EXISTS /usr/bin/python3)
      specstate_has_numpy("${_specstate_python_given}" _specstate_first_has_numpy)
      specstate_has_numpy(/usr/bin/python3 _specstate_debian_has_numpy)
      if(NOT _specstate_first_has_numpy AND _specstate_debian_has_numpy)
        message(STATUS "specstate: ${_specstate_python_given} has no NumPy: using /usr/bin/python3")
        set(_specstate_python_given /usr/bin/python3)
        set(_specstate_python_how "Debian's: the Python found first has no NumPy")
      endif()
    endif()
  endif()
  specstate_probe_python("${_specstate_python_given}" "${_specstate_python_how}")
endmacro()

# Whether `python` imports NumPy, into `out`.
function(specstate_has_numpy python out)
  execute_process(COMMAND "${python}" -c "import numpy" RESULT_VARIABLE rc OUTPUT_QUIET
                  ERROR_QUIET)
  if(rc EQUAL 0)
    set(${out} TRUE PARENT_SCOPE)
  else()
    set(${out} FALSE PARENT_SCOPE)
  endif()
endfunction()

# Runs `python` once: its sys.executable, version, NumPy version and whether it has pytest
# ("none" for a module it lacks).
function(specstate_probe_python python how)
  execute_process(
    COMMAND "${python}" -c
            "import importlib.util as u, sys\ntry:\n import numpy; v = numpy.__version__\nexcept ImportError:\n v = 'none'\nprint(sys.executable); print('%d.%d.%d' % sys.version_info[:3]); print(v); print('yes' if u.find_spec('pytest') else 'none')"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "specstate: Python ${python} (${how}) does not run: ${err}")
  endif()
  string(REPLACE "\n" ";" out "${out}")
  list(GET out 0 executable)
  list(GET out 1 version)
  list(GET out 2 numpy)
  list(GET out 3 pytest)
  if(version VERSION_LESS 3.9)
    message(FATAL_ERROR "specstate: ${executable} is Python ${version} (${how}); the package"
                        " needs Python >= 3.9: give one with -DSPECSTATE_PYTHON=PATH")
  endif()
  if(SPECSTATE_BUILD_PYTHON AND numpy STREQUAL "none")
    message(FATAL_ERROR
      "specstate: ${executable} (Python ${version}, ${how}) has no NumPy, which the Python "
      "package needs at run time. Install it into that Python (${executable} -m pip install "
      "numpy), choose another Python with -DSPECSTATE_PYTHON=PATH (Debian's /usr/bin/python3 "
      "with python3-numpy), or build without the package: -DSPECSTATE_BUILD_PYTHON=OFF")
  endif()
  set(missing)
  foreach(module numpy pytest)
    if(${module} STREQUAL "none")
      list(APPEND missing ${module})
    endif()
  endforeach()
  if(SPECSTATE_BUILD_TESTS AND missing)
    list(JOIN missing " and " missing)
    message(WARNING "specstate: ${executable} (${how}) has no ${missing}: the tests that run "
                    "Python with them will fail. Install them there, or give "
                    "-DSPECSTATE_PYTHON=PATH (Debian's /usr/bin/python3 with python3-numpy and "
                    "python3-pytest).")
  endif()
  if(SPECSTATE_BUILD_PYTHON)
    message(STATUS "specstate: Python package for ${executable} (Python ${version}, NumPy ${numpy})")
  else()
    message(STATUS "specstate: Python tests run with ${executable} (Python ${version})")
  endif()
  set(SPECSTATE_PYTHON "${executable}" PARENT_SCOPE)
  set(SPECSTATE_PYTHON_VERSION "${version}" PARENT_SCOPE)
endfunction()
