# Cross-compiling for 64-bit Arm (GH200 / GB200 hosts are Grace, AArch64) with Debian's
# toolchain, the test binaries run under qemu-user (the `aarch64` preset; tools/test-aarch64 installs
# what it needs). Libraries come from Debian's arm64 packages (multiarch: /usr/lib/aarch64-linux-gnu).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# qemu-aarch64 runs the tests (and gtest_discover_tests' listing); -L: the arm64 runtime's root.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
