// The precompiled header shared by gm's tests, examples and benchmarks: torch's headers are the cost.
#pragma once
#include <torch/torch.h>
#include <toml++/toml.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>
