// The one doctest main shared by every test file.  CMake compiles this file without the precompiled
// header (which already holds doctest.h), so the define below takes effect.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
