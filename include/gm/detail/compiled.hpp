#pragma once
/// @file
/// Header-only or compiled: how gm's non-template functions reach a program.
///
/// By default gm is header-only: every function is defined in its header (`inline`), and each translation
/// unit that uses one compiles it.  Linking `gm::runtime` instead defines `GM_COMPILED`: the headers then
/// declare their non-template functions (the config and its command line, the run folder, I/O, TensorBoard,
/// plots, checkpoints, the experiment driver's fixed parts, the Fréchet distance) and skip their bodies and
/// the headers those need (CLI11, toml++, Eigen, zlib), which libgm_runtime compiled once.  An experiment
/// then compiles only what depends on its own types.  Templates stay in the headers either way.
///
/// A header marks each such definition `GM_INLINE` and puts it inside `#if GM_HEADER_DEFINITIONS`.

#if defined(GM_COMPILED) && !defined(GM_RUNTIME_SOURCE)
#define GM_HEADER_DEFINITIONS 0  // declarations only: libgm_runtime has the definitions
#else
#define GM_HEADER_DEFINITIONS 1
#endif

#if defined(GM_COMPILED)
#define GM_INLINE  // libgm_runtime's one definition
#else
#define GM_INLINE inline
#endif
