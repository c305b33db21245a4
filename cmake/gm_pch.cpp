// Compiles gm_pch.hpp once; its objects are unused.
