// The precompiled header of gm's tests: the torch headers gm's core uses, toml++ and doctest.
#pragma once
#include <torch/csrc/autograd/autograd.h>
#include <torch/types.h>
#include <toml++/toml.h>
#include <CLI/CLI.hpp>
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>
