// The one doctest main shared by every test file.
// (doctest is not in the shared precompiled header, which examples use too.)
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
