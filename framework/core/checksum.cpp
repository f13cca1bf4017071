#include "core/checksum.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <vector>

#include "core/errors.h"

namespace gantry {

void Crc32::update(const void* data, size_t bytes) {
  auto p = static_cast<const Bytef*>(data);
  while (bytes > 0) {  // zlib takes uInt lengths
    uInt n = bytes > (1u << 30) ? (1u << 30) : static_cast<uInt>(bytes);
    crc_ = static_cast<uint32_t>(crc32(crc_, p, n));
    p += n;
    bytes -= n;
  }
}

std::string Crc32::str() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", crc_);
  return std::string("crc32:") + buf;
}

std::string file_checksum(const std::string& path, uint64_t* bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError(at(path, errno_text(errno)));
  std::vector<char> buf(4 << 20);
  Crc32 crc;
  uint64_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      throw DataError(at(path, errno_text(err)));
    }
    if (n == 0) break;
    crc.update(buf.data(), static_cast<size_t>(n));
    total += static_cast<uint64_t>(n);
  }
  ::close(fd);
  if (bytes) *bytes = total;
  return crc.str();
}

}  // namespace gantry
