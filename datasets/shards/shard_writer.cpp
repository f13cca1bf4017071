#include "shards/shard_writer.h"

#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "core/checksum.h"
#include "core/errors.h"
#include "core/fs.h"

namespace gantry::data {

namespace fs = std::filesystem;

namespace {
constexpr size_t kWriteBatchBytes = 8 << 20;  // images are written to HDF5 in ~8 MiB hyperslabs

// HDF5 reports failures without the OS's reason; errno still holds it when a system call failed
// (no space, permission denied, I/O error). Callers clear errno before the HDF5 call.
[[noreturn]] void environment_failure(const std::string& where, const std::string& what) {
  throw EnvironmentError(at(where, what + (errno ? ": " + errno_text(errno) : std::string())));
}
void h5check(herr_t rc, const std::string& where) {
  if (rc < 0) environment_failure(where, "HDF5 write failed");
}
}  // namespace

H5Handle create_shard_file(const std::string& path, int64_t count, int64_t h, int64_t w, int64_t c, bool labels,
                           H5Handle* images_out) {
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  H5Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // 1.10 format: a fixed-size chunked dataset gets the Fixed Array index.
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_LATEST);
  // Images of whole pages (64x64x3 = 3 pages) start on a page boundary: a read touches exactly its own
  // pages of the page cache. Other sizes stay packed (alignment would pad every image).
  const hsize_t image_bytes = static_cast<hsize_t>(h * w * c);
  if (image_bytes % 4096 == 0) H5Pset_alignment(fapl.get(), 4096, 4096);
  errno = 0;
  H5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
  if (!file.valid()) environment_failure(path, "cannot create HDF5 file");

  hsize_t dims[4] = {static_cast<hsize_t>(count), static_cast<hsize_t>(h), static_cast<hsize_t>(w),
                     static_cast<hsize_t>(c)};
  hsize_t chunk[4] = {1, dims[1], dims[2], dims[3]};
  H5Handle space(H5Screate_simple(4, dims, nullptr), H5Sclose);
  H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  h5check(H5Pset_chunk(dcpl.get(), 4, chunk), path);
  // All chunks allocated at creation, in index order, never filled twice: image i lives at base + i*stride.
  h5check(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY), path);
  h5check(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), path);
  H5Handle images(H5Dcreate2(file.get(), "images", H5T_STD_U8LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                  H5Dclose);
  if (!images.valid()) environment_failure(path, "cannot create dataset 'images'");
  if (labels) {
    hsize_t ldims[1] = {static_cast<hsize_t>(count)};
    H5Handle lspace(H5Screate_simple(1, ldims, nullptr), H5Sclose);
    H5Handle lcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    h5check(H5Pset_alloc_time(lcpl.get(), H5D_ALLOC_TIME_EARLY), path);
    H5Handle ld(H5Dcreate2(file.get(), "labels", H5T_STD_I64LE, lspace.get(), H5P_DEFAULT, lcpl.get(), H5P_DEFAULT),
                H5Dclose);
    if (!ld.valid()) environment_failure(path, "cannot create dataset 'labels'");
  }
  *images_out = std::move(images);
  return file;
}

ShardWriter::ShardWriter(std::string dir, int64_t height, int64_t width, int64_t channels, bool has_labels,
                         int64_t shard_size, int64_t expected_total, std::string source)
    : dir_(std::move(dir)), shard_size_(shard_size), expected_total_(expected_total) {
  if (height <= 0 || width <= 0 || channels <= 0 || shard_size <= 0)
    throw std::invalid_argument("ShardWriter: sizes must be positive");
  manifest_.height = height;
  manifest_.width = width;
  manifest_.channels = channels;
  manifest_.has_labels = has_labels;
  manifest_.source = std::move(source);
  fs::create_directories(dir_);
  silence_hdf5_errors();
}

ShardWriter::~ShardWriter() {
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  images_.reset();
  file_.reset();
}

void ShardWriter::open_shard() {
  int64_t remaining = expected_total_ - manifest_.count;
  capacity_ = remaining > 0 ? std::min(shard_size_, remaining) : shard_size_;
  std::string path = (fs::path(dir_) / shard_file_name(manifest_.shards.size())).string();
  file_ = create_shard_file(path, capacity_, manifest_.height, manifest_.width, manifest_.channels,
                            manifest_.has_labels, &images_);
  in_shard_ = flushed_ = 0;
  labels_.clear();
}

void ShardWriter::add(const uint8_t* image, int64_t label) {
  if (finished_) throw std::logic_error("ShardWriter::add after finish");
  if (!file_.valid()) open_shard();
  size_t n = static_cast<size_t>(manifest_.image_bytes());
  buffer_.insert(buffer_.end(), image, image + n);
  labels_.push_back(label);
  ++in_shard_;
  if (buffer_.size() >= kWriteBatchBytes) flush_buffer();
  if (in_shard_ == capacity_) close_shard();
}

void ShardWriter::flush_buffer() {
  if (buffer_.empty()) return;
  int64_t n = in_shard_ - flushed_;
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  hsize_t start[4] = {static_cast<hsize_t>(flushed_), 0, 0, 0};
  hsize_t count[4] = {static_cast<hsize_t>(n), static_cast<hsize_t>(manifest_.height),
                      static_cast<hsize_t>(manifest_.width), static_cast<hsize_t>(manifest_.channels)};
  H5Handle fspace(H5Dget_space(images_.get()), H5Sclose);
  H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
  H5Handle mspace(H5Screate_simple(4, count, nullptr), H5Sclose);
  errno = 0;
  h5check(H5Dwrite(images_.get(), H5T_NATIVE_UINT8, mspace.get(), fspace.get(), H5P_DEFAULT, buffer_.data()), dir_);
  flushed_ = in_shard_;
  buffer_.clear();
}

void ShardWriter::close_shard() {
  if (!file_.valid()) return;
  flush_buffer();
  std::string name = shard_file_name(manifest_.shards.size());
  std::string path = (fs::path(dir_) / name).string();
  {
    std::lock_guard<std::mutex> lock(hdf5_mutex());
    if (manifest_.has_labels) {
      H5Handle ld(H5Dopen2(file_.get(), "labels", H5P_DEFAULT), H5Dclose);
      hsize_t n = static_cast<hsize_t>(in_shard_);
      H5Handle fspace(H5Dget_space(ld.get()), H5Sclose);
      hsize_t start = 0;
      H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &start, nullptr, &n, nullptr);
      H5Handle mspace(H5Screate_simple(1, &n, nullptr), H5Sclose);
      errno = 0;
      h5check(H5Dwrite(ld.get(), H5T_NATIVE_INT64, mspace.get(), fspace.get(), H5P_DEFAULT, labels_.data()), path);
    }
    errno = 0;
    h5check(H5Fflush(file_.get(), H5F_SCOPE_LOCAL), path);
  }
  if (in_shard_ < capacity_) {
    // Fewer images than slots (bad records, unknown total): rewrite at the exact size.
    std::string tmp = path + ".exact";
    H5Handle dst_images;
    H5Handle dst = create_shard_file(tmp, in_shard_, manifest_.height, manifest_.width, manifest_.channels,
                                     manifest_.has_labels, &dst_images);
    std::lock_guard<std::mutex> lock(hdf5_mutex());
    int64_t per = std::max<int64_t>(1, static_cast<int64_t>(kWriteBatchBytes) / manifest_.image_bytes());
    std::vector<uint8_t> block(static_cast<size_t>(per * manifest_.image_bytes()));
    for (int64_t off = 0; off < in_shard_; off += per) {
      hsize_t start[4] = {static_cast<hsize_t>(off), 0, 0, 0};
      hsize_t count[4] = {static_cast<hsize_t>(std::min(per, in_shard_ - off)), static_cast<hsize_t>(manifest_.height),
                          static_cast<hsize_t>(manifest_.width), static_cast<hsize_t>(manifest_.channels)};
      H5Handle mspace(H5Screate_simple(4, count, nullptr), H5Sclose);
      H5Handle sspace(H5Dget_space(images_.get()), H5Sclose);
      H5Sselect_hyperslab(sspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
      h5check(H5Dread(images_.get(), H5T_NATIVE_UINT8, mspace.get(), sspace.get(), H5P_DEFAULT, block.data()), path);
      H5Handle dspace(H5Dget_space(dst_images.get()), H5Sclose);
      H5Sselect_hyperslab(dspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
      h5check(H5Dwrite(dst_images.get(), H5T_NATIVE_UINT8, mspace.get(), dspace.get(), H5P_DEFAULT, block.data()), tmp);
    }
    if (manifest_.has_labels) {
      H5Handle ld(H5Dopen2(dst.get(), "labels", H5P_DEFAULT), H5Dclose);
      errno = 0;
      h5check(H5Dwrite(ld.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels_.data()), tmp);
    }
    dst_images.reset();
    dst.reset();
    images_.reset();
    file_.reset();
    fs::rename(tmp, path);
  } else {
    std::lock_guard<std::mutex> lock(hdf5_mutex());
    images_.reset();
    file_.reset();
  }
  fsync_path(path);
  ShardInfo info;
  info.file = name;
  info.count = in_shard_;
  info.checksum = file_checksum(path, &info.bytes);
  manifest_.count += in_shard_;
  manifest_.shards.push_back(std::move(info));
  in_shard_ = flushed_ = capacity_ = 0;
}

Manifest ShardWriter::finish() {
  if (finished_) return manifest_;
  close_shard();
  write_manifest(dir_, manifest_);
  fsync_path(dir_);
  finished_ = true;
  return manifest_;
}

}  // namespace gantry::data
