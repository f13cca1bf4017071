// Small RAII and error helpers around the HDF5 C API (datasets/ only). Every HDF5 call gantry makes
// holds hdf5_mutex(): the library may be built without thread safety, and the loader is threaded.
#pragma once

#include <hdf5.h>

#include <mutex>
#include <string>

namespace gantry::data {

std::mutex& hdf5_mutex();

// Owns one hid_t and closes it with the matching H5*close.
class H5Handle {
 public:
  H5Handle() = default;
  H5Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  H5Handle(H5Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  H5Handle& operator=(H5Handle&& o) noexcept {
    reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
    return *this;
  }
  ~H5Handle() { reset(); }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

// Turns off HDF5's automatic error stack printing for the calling thread (errors become gantry's
// one-line messages). Cheap after the first call on a thread; call it before HDF5 calls that may fail.
void silence_hdf5_errors();
std::string hdf5_version();

}  // namespace gantry::data
