// Compiles a precompiled header once; the object itself is empty.
