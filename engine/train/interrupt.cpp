// engine/train/interrupt.cpp: the SIGINT/SIGTERM handler (async-signal-safe: an atomic and
// write(2)), and the resume command printed after a clean stop.
#include "engine/train/interrupt.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace octa {
namespace {

std::atomic<int> g_pending{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");
std::atomic<bool> g_installed{false};
struct sigaction g_previous_int, g_previous_term;

void say(const char* message) {
  // Best effort: nothing to do in a signal handler when stderr is gone.
  const ssize_t ignored = ::write(STDERR_FILENO, message, std::strlen(message));
  (void)ignored;
}

extern "C" void on_stop_signal(int sig) {
  int none = 0;
  const bool int_signal = sig == SIGINT;
  if (g_pending.compare_exchange_strong(none, sig)) {
    say(int_signal ? "\nocta: SIGINT: finishing this step, then saving a checkpoint (again to stop "
                     "at once)\n"
                   : "\nocta: SIGTERM: finishing this step, then saving a checkpoint (again to "
                     "stop at once)\n");
    return;
  }
  say(int_signal ? "\nocta: SIGINT again: stopping at once; the last complete checkpoint is kept\n"
                 : "\nocta: SIGTERM again: stopping at once; the last complete checkpoint is "
                   "kept\n");
  ::_exit(interrupt_exit_status(sig));
}

bool needs_quotes(std::string_view s) {
  if (s.empty()) return true;
  for (const char c : s) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       std::strchr("_-./=:,+@%", c) != nullptr;
    if (!plain) return true;
  }
  return false;
}

}  // namespace

InterruptHandler::InterruptHandler() {
  OCTA_CHECK(!g_installed.exchange(true), "InterruptHandler: one is installed already");
  g_pending = 0;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // the training loop's reads and waits carry on undisturbed
  ::sigaction(SIGINT, &sa, &g_previous_int);
  ::sigaction(SIGTERM, &sa, &g_previous_term);
}

InterruptHandler::~InterruptHandler() {
  ::sigaction(SIGINT, &g_previous_int, nullptr);
  ::sigaction(SIGTERM, &g_previous_term, nullptr);
  g_installed = false;
}

int pending_interrupt() {
  return g_pending.load(std::memory_order_relaxed);
}

void request_interrupt(int sig) {
  int none = 0;
  g_pending.compare_exchange_strong(none, sig);
}

void clear_interrupt() {
  g_pending = 0;
}

std::string signal_name(int sig) {
  if (sig == SIGINT) return "SIGINT";
  if (sig == SIGTERM) return "SIGTERM";
  return fmt::format("signal {}", sig);
}

std::string shell_quote(std::string_view s) {
  if (!needs_quotes(s)) return std::string(s);
  std::string q = "'";
  for (const char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

std::string resume_command(const std::vector<std::string>& argv,
                           const std::filesystem::path& checkpoint, std::string_view launcher) {
  std::string cmd(launcher);
  const auto add = [&](std::string_view word) {
    if (!cmd.empty()) cmd += ' ';
    cmd += shell_quote(word);
  };
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string_view a = argv[i];
    bool dropped = false;
    for (const std::string_view flag : {"--resume", "--init-from", "--export-init"}) {
      if (i > 0 && a == flag) {
        ++i;  // and its value
        dropped = true;
      } else if (i > 0 && a.size() > flag.size() && a.substr(0, flag.size()) == flag &&
                 a[flag.size()] == '=') {
        dropped = true;
      }
      if (dropped) break;
    }
    if (!dropped) add(a);
  }
  add("--resume");
  add(checkpoint.string());
  return cmd;
}

}  // namespace octa
