// File-system helpers for "complete or absent" outputs: write to a temporary name, fsync, rename.
#pragma once

#include <string>

namespace gantry {

// Writes `contents` to `path` atomically (temp file in the same directory, fsync, rename, fsync dir).
void write_file_atomic(const std::string& path, const std::string& contents);
// Reads a whole file; throws DataError naming the file when it cannot.
std::string read_file(const std::string& path);
// fsync a file or directory by path; throws on error.
void fsync_path(const std::string& path);
// A sibling name for temporary output: "<path>.tmp-<pid>".
std::string temp_sibling(const std::string& path);

}  // namespace gantry
