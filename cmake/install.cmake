# `cmake --install`: the command line, the libraries, their public headers under
# include/specstate/ (core/, backends/, sim/ as in the source tree; #include
# <specstate/sim/simulator.h>), and the CMake package
#   find_package(specstate)  ->  specstate::core, specstate::numerics, specstate::trace,
#                                specstate::policy, specstate::backend_api, specstate::cpu,
#                                specstate::backends, specstate::sim
# (and specstate::cuda when the CUDA backend was built; specstate::backends links it).
set(_specstate_libraries specstate_core specstate_numerics specstate_trace specstate_policy
                         specstate_backend_api specstate_cpu specstate_backends specstate_sim)
foreach(lib ${_specstate_libraries})
  string(REPLACE "specstate_" "" _export_name ${lib})
  set_target_properties(${lib} PROPERTIES EXPORT_NAME ${_export_name})
endforeach()
if(TARGET specstate_cuda)
  set_target_properties(specstate_cuda PROPERTIES EXPORT_NAME cuda)
  list(APPEND _specstate_libraries specstate_cuda)
endif()

install(TARGETS ${_specstate_libraries} EXPORT specstate-targets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS specstate RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
foreach(part core backends sim)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${part}/
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/specstate/${part}
          FILES_MATCHING PATTERN "*.h")
endforeach()
# Users write #include <specstate/sim/simulator.h>: the include directory itself is on their
# path. The headers include each other as "core/...", "sim/...", which include/specstate (set by
# core/CMakeLists.txt) resolves.
target_include_directories(specstate_core INTERFACE
                           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

set(_specstate_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/specstate)
install(EXPORT specstate-targets NAMESPACE specstate:: DESTINATION ${_specstate_cmake_dir})
include(CMakePackageConfigHelpers)
set(SPECSTATE_CONFIG_WITH_CUDA ${SPECSTATE_WITH_CUDA})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/specstateConfig.cmake.in
                              ${CMAKE_CURRENT_BINARY_DIR}/specstateConfig.cmake
                              INSTALL_DESTINATION ${_specstate_cmake_dir})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/specstateConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/specstateConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/specstateConfigVersion.cmake
        DESTINATION ${_specstate_cmake_dir})
