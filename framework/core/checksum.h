// Streaming checksums for shards and checkpoints: CRC-32 (zlib), printed as "crc32:xxxxxxxx".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace gantry {

class Crc32 {
 public:
  void update(const void* data, size_t bytes);
  uint32_t value() const { return crc_; }
  std::string str() const;  // "crc32:0badf00d"

 private:
  uint32_t crc_ = 0;
};

// Checksum of a whole file, read in large blocks; throws DataError naming the file if unreadable.
std::string file_checksum(const std::string& path, uint64_t* bytes = nullptr);

}  // namespace gantry
