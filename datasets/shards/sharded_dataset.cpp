#include "shards/sharded_dataset.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "core/checksum.h"
#include "core/errors.h"
#include "report/progress.h"
#include "shards/hdf5_util.h"

namespace gantry::data {

namespace fs = std::filesystem;

struct ShardedDataset::Shard {
  std::string path;
  int64_t count = 0;
  std::once_flag once;
  int fd = -1;
  bool fast = false;
  uint64_t base = 0, stride = 0;  // fast path: image i at base + i*stride
  std::vector<int64_t> labels;    // read whole when the shard is opened (8 bytes per image)
  H5Handle file, images;          // fallback path
  ~Shard() {
    if (fd >= 0) ::close(fd);
    std::lock_guard<std::mutex> lock(hdf5_mutex());
    images.reset();
    file.reset();
  }
};

namespace {

void pread_all(int fd, void* dst, size_t n, uint64_t offset, const std::string& path) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw DataError(at(path, "read failed: " + errno_text(errno)));
    }
    if (r == 0) throw DataError(at(path, "unexpected end of file (truncated shard?)"));
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
}

bool is_integer_type(hid_t type, size_t size, H5T_sign_t sign) {
  return H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == size && H5Tget_sign(type) == sign &&
         H5Tget_order(type) == H5T_ORDER_LE;
}

}  // namespace

ShardedDataset::ShardedDataset(std::string dir, Manifest manifest) : dir_(std::move(dir)), manifest_(std::move(manifest)) {
  int64_t start = 0;
  for (const auto& s : manifest_.shards) {
    starts_.push_back(start);
    start += s.count;
    auto shard = std::make_unique<Shard>();
    shard->path = (fs::path(dir_) / s.file).string();
    shard->count = s.count;
    shards_.push_back(std::move(shard));
  }
}

ShardedDataset::~ShardedDataset() = default;

std::shared_ptr<ShardedDataset> ShardedDataset::open(const std::string& dir) {
  Manifest m = read_manifest(dir);
  if (m.count == 0) throw DataError(at(dir, "dataset has no images"));
  silence_hdf5_errors();
  return std::shared_ptr<ShardedDataset>(new ShardedDataset(dir, std::move(m)));
}

ShardedDataset::Shard& ShardedDataset::opened(size_t s) const {
  Shard& sh = *shards_.at(s);
  std::call_once(sh.once, [&] {
    const ShardInfo& info = manifest_.shards[s];
    const std::string& path = sh.path;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw DataError(at(path, "missing shard (listed in manifest.json)"));
    if (static_cast<uint64_t>(st.st_size) != info.bytes)
      throw DataError(at(path, "size " + std::to_string(st.st_size) + " bytes, manifest says " +
                                   std::to_string(info.bytes) + " (truncated or replaced?)"));
    silence_hdf5_errors();  // per thread: this may run on a loader worker
    std::lock_guard<std::mutex> lock(hdf5_mutex());
    H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    if (!file.valid()) throw DataError(at(path, "not a readable HDF5 file"));
    H5Handle images(H5Dopen2(file.get(), "images", H5P_DEFAULT), H5Dclose);
    if (!images.valid()) throw DataError(at(path, "no dataset 'images'"));
    H5Handle type(H5Dget_type(images.get()), H5Tclose);
    if (!is_integer_type(type.get(), 1, H5T_SGN_NONE)) throw DataError(at(path, "'images' is not uint8"));
    H5Handle space(H5Dget_space(images.get()), H5Sclose);
    hsize_t dims[4] = {0, 0, 0, 0};
    if (H5Sget_simple_extent_ndims(space.get()) != 4) throw DataError(at(path, "'images' is not 4-D [N,H,W,C]"));
    H5Sget_simple_extent_dims(space.get(), dims, nullptr);
    auto shape_str = [&] {
      return "[" + std::to_string(dims[0]) + "," + std::to_string(dims[1]) + "," + std::to_string(dims[2]) + "," +
             std::to_string(dims[3]) + "]";
    };
    if (static_cast<int64_t>(dims[0]) != sh.count || static_cast<int64_t>(dims[1]) != manifest_.height ||
        static_cast<int64_t>(dims[2]) != manifest_.width || static_cast<int64_t>(dims[3]) != manifest_.channels)
      throw DataError(at(path, "'images' has shape " + shape_str() + ", manifest says [" + std::to_string(sh.count) +
                                   "," + std::to_string(manifest_.height) + "," + std::to_string(manifest_.width) +
                                   "," + std::to_string(manifest_.channels) + "]"));
    // Fast path: unfiltered chunks of exactly one image, laid out in index order.
    const uint64_t img = static_cast<uint64_t>(manifest_.image_bytes());
    H5Handle dcpl(H5Dget_create_plist(images.get()), H5Pclose);
    bool fast = false;
    uint64_t base = 0, fast_stride = img;
    if (H5Pget_layout(dcpl.get()) == H5D_CHUNKED && H5Pget_nfilters(dcpl.get()) == 0) {
      hsize_t chunk[4] = {0, 0, 0, 0};
      H5Pget_chunk(dcpl.get(), 4, chunk);
      if (chunk[0] == 1 && chunk[1] == dims[1] && chunk[2] == dims[2] && chunk[3] == dims[3]) {
        // Probe a few chunks: first, last and evenly between; the layout must be base + i*stride with
        // stride >= one image (ShardWriter packs images, or page-aligns whole-page ones).
        fast = true;
        uint64_t stride = img;
        int64_t probes = std::min<int64_t>(sh.count, 9);
        for (int64_t p = 0; p < probes && fast; ++p) {
          int64_t i = probes == 1 ? 0 : p * (sh.count - 1) / (probes - 1);
          hsize_t coord[4] = {static_cast<hsize_t>(i), 0, 0, 0};
          unsigned mask = 0;
          haddr_t addr = HADDR_UNDEF;
          hsize_t size = 0;
          if (H5Dget_chunk_info_by_coord(images.get(), coord, &mask, &addr, &size) < 0 || addr == HADDR_UNDEF ||
              size != img) {
            fast = false;
            break;
          }
          if (p == 0) {
            base = addr;
          } else if (p == 1) {
            if (addr <= base || (addr - base) % static_cast<uint64_t>(i) != 0) fast = false;
            else stride = (addr - base) / static_cast<uint64_t>(i);
            fast = fast && stride >= img;
          } else {
            fast = addr == base + static_cast<uint64_t>(i) * stride;
          }
        }
        if (fast && base + static_cast<uint64_t>(sh.count - 1) * stride + img > info.bytes)
          throw DataError(at(path, "image chunks extend past the end of the file (truncated shard?)"));
        fast_stride = stride;
      }
    }
    std::vector<int64_t> label_values;
    if (manifest_.has_labels) {
      H5Handle labels(H5Dopen2(file.get(), "labels", H5P_DEFAULT), H5Dclose);
      if (!labels.valid()) throw DataError(at(path, "no dataset 'labels' (manifest says has_labels)"));
      H5Handle ltype(H5Dget_type(labels.get()), H5Tclose);
      if (!is_integer_type(ltype.get(), 8, H5T_SGN_2)) throw DataError(at(path, "'labels' is not int64"));
      H5Handle lspace(H5Dget_space(labels.get()), H5Sclose);
      hsize_t ldim = 0;
      if (H5Sget_simple_extent_ndims(lspace.get()) != 1) throw DataError(at(path, "'labels' is not 1-D"));
      H5Sget_simple_extent_dims(lspace.get(), &ldim, nullptr);
      if (static_cast<int64_t>(ldim) != sh.count)
        throw DataError(at(path, "'labels' has " + std::to_string(ldim) + " entries, 'images' " + std::to_string(sh.count)));
      label_values.resize(static_cast<size_t>(sh.count));
      if (H5Dread(labels.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, label_values.data()) < 0)
        throw DataError(at(path, "cannot read 'labels' (truncated shard?)"));
    }
    if (fast) {
      sh.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (sh.fd < 0) throw DataError(at(path, errno_text(errno)));
      sh.base = base;
      sh.stride = fast_stride;
    } else {
      sh.images = std::move(images);
      sh.file = std::move(file);
    }
    sh.fast = fast;
    sh.labels = std::move(label_values);
  });
  return sh;
}

ShardedDataset::Shard& ShardedDataset::shard_for(int64_t index, int64_t* local) const {
  if (index < 0 || index >= manifest_.count)
    throw std::out_of_range("dataset index " + std::to_string(index) + " out of range");
  size_t s = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), index) - starts_.begin()) - 1;
  *local = index - starts_[s];
  return opened(s);
}

void ShardedDataset::read_image(int64_t index, uint8_t* dst) const {
  int64_t i = 0;
  Shard& sh = shard_for(index, &i);
  if (sh.fast) {
    pread_all(sh.fd, dst, static_cast<size_t>(manifest_.image_bytes()), sh.base + static_cast<uint64_t>(i) * sh.stride,
              sh.path);
    return;
  }
  silence_hdf5_errors();
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  hsize_t start[4] = {static_cast<hsize_t>(i), 0, 0, 0};
  hsize_t count[4] = {1, static_cast<hsize_t>(manifest_.height), static_cast<hsize_t>(manifest_.width),
                      static_cast<hsize_t>(manifest_.channels)};
  H5Handle fspace(H5Dget_space(sh.images.get()), H5Sclose);
  H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
  H5Handle mspace(H5Screate_simple(4, count, nullptr), H5Sclose);
  if (H5Dread(sh.images.get(), H5T_NATIVE_UINT8, mspace.get(), fspace.get(), H5P_DEFAULT, dst) < 0)
    throw DataError(at(sh.path, "cannot read image " + std::to_string(i)));
}

int64_t ShardedDataset::label(int64_t index) const {
  if (!manifest_.has_labels) throw std::logic_error("dataset has no labels");
  int64_t i = 0;
  return shard_for(index, &i).labels[static_cast<size_t>(i)];
}

void ShardedDataset::check_shard(size_t s) const { opened(s); }
bool ShardedDataset::fast_path(size_t s) const { return opened(s).fast; }

int64_t verify_dataset(const std::string& dir, bool progress) {
  Manifest m = read_manifest(dir);
  uint64_t total_bytes = 0;
  for (const auto& s : m.shards) total_bytes += s.bytes;
  Progress bar("verify", total_bytes >> 20, "MiB", stderr, progress);
  auto ds = std::shared_ptr<ShardedDataset>(nullptr);
  if (m.count > 0) ds = ShardedDataset::open(dir);
  for (size_t i = 0; i < m.shards.size(); ++i) {
    const ShardInfo& info = m.shards[i];
    std::string path = (fs::path(dir) / info.file).string();
    if (!fs::exists(path)) throw DataError(at(path, "missing shard (listed in manifest.json)"));
    uint64_t bytes = 0;
    std::string sum = file_checksum(path, &bytes);
    if (bytes != info.bytes)
      throw DataError(at(path, "size " + std::to_string(bytes) + " bytes, manifest says " + std::to_string(info.bytes) +
                                   " (truncated or replaced?)"));
    if (sum != info.checksum) throw DataError(at(path, "checksum " + sum + ", manifest says " + info.checksum));
    ds->check_shard(i);
    bar.advance(info.bytes >> 20);
  }
  bar.finish();
  return m.count;
}

}  // namespace gantry::data
