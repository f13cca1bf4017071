// How a backend that runs collectives on its own device stream (NCCL) orders them against the
// compute stream without the host ever waiting: an event recorded on the compute stream once the
// inputs are queued, which the communication stream waits on before the collective; an event recorded
// on the communication stream after it, which the caller's stream waits on before using the result
// (Work::wait()). Only streams wait; nothing here synchronises the host.
// Device-generic (c10::Stream, c10::impl::InlineEvent): the NCCL backend instantiates it with
// LibTorch's VirtualGuardImpl (CUDA events), tests with a fake guard that records the calls.
#pragma once

#include <c10/core/Stream.h>
#include <c10/core/impl/InlineEvent.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <memory>

namespace gantry::dist_detail {

template <class Impl = c10::impl::VirtualGuardImpl>
using StreamEvent = c10::impl::InlineEvent<Impl>;

// Runs `enqueue` (which queues a collective on `comm`) so that the collective starts only after
// everything already queued on `compute`; returns the event that marks the collective's end on `comm`.
template <class Impl = c10::impl::VirtualGuardImpl, class Enqueue>
std::shared_ptr<StreamEvent<Impl>> enqueue_after(const c10::Stream& compute, const c10::Stream& comm,
                                                 Enqueue&& enqueue) {
  StreamEvent<Impl> inputs_ready(compute.device_type());
  inputs_ready.record(compute);
  inputs_ready.block(comm);
  enqueue();
  auto done = std::make_shared<StreamEvent<Impl>>(comm.device_type());
  done->record(comm);
  return done;
}

// Makes `stream` (the caller's) wait for the collective whose end `done` marks.
template <class Impl>
void wait_for(const StreamEvent<Impl>& done, const c10::Stream& stream) {
  done.block(stream);
}

}  // namespace gantry::dist_detail
