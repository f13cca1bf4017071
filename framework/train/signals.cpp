#include "train/signals.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <initializer_list>

namespace gantry {

namespace {
std::atomic<int> g_signal{0};  // process-wide by nature: a signal handler has no other way to talk
std::atomic<int> g_interrupts{0};

void on_signal(int sig) {
  int expected = 0;
  g_signal.compare_exchange_strong(expected, sig);
  if (sig == SIGINT && g_interrupts.fetch_add(1) >= 1) {
    const char msg[] = "gantry: second interrupt, stopping now without a checkpoint\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(130);
  }
}
}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGTERM, SIGUSR1, SIGINT}) sigaction(sig, &sa, nullptr);
}

bool stop_requested() {
  return g_signal.load() != 0;
}
int stop_signal() {
  return g_signal.load();
}
void clear_stop_request() {
  g_signal.store(0);
  g_interrupts.store(0);
}

}  // namespace gantry
