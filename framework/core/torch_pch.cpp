// The translation unit that compiles the precompiled LibTorch header every gantry target reuses
// (GANTRY_PCH in the top-level CMakeLists.txt). It has no code of its own.
