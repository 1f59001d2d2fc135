// engine/train/interrupt.hpp: stopping a training run cleanly on SIGINT (Ctrl-C) or SIGTERM.
//
// While an InterruptHandler lives, the first SIGINT or SIGTERM only records the signal (and says
// so on stderr). The training loop (trainer.cpp) looks before each step: it lets the step in
// progress finish, saves a checkpoint at that point, mid-epoch if need be, and throws Interrupted;
// the app prints resume_command() and exits with 128 + the signal (130, 143). A second signal
// ends the process at once with the same status (_exit in the handler): the files on disk are
// then those of the last complete save, because every save is atomic (save_checkpoint).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/error.hpp"

namespace octa {

class InterruptHandler {
 public:
  // Installs the handler for SIGINT and SIGTERM and clears any recorded signal; the destructor
  // restores the previous handlers. One at a time.
  InterruptHandler();
  ~InterruptHandler();
  InterruptHandler(const InterruptHandler&) = delete;
  InterruptHandler& operator=(const InterruptHandler&) = delete;
};

// The first signal recorded since the handler was installed, or 0. Safe from any thread.
int pending_interrupt();
// Records sig as the handler's first call does (without the message): for tests and embedders.
void request_interrupt(int sig);
void clear_interrupt();

// "SIGINT", "SIGTERM", or "signal N".
std::string signal_name(int sig);
// The exit status a run stopped by sig ends with: 128 + sig, as a shell reports a signal.
inline int interrupt_exit_status(int sig) {
  return 128 + sig;
}

// What train() throws when a signal stopped it. checkpoint(): where the run can be resumed from
// (empty when checkpoints were off).
class Interrupted : public Error {
 public:
  Interrupted(int sig, const std::string& message, std::filesystem::path checkpoint)
      : Error(message), signal_(sig), checkpoint_(std::move(checkpoint)) {}
  int signal() const { return signal_; }
  const std::filesystem::path& checkpoint() const { return checkpoint_; }

 private:
  int signal_;
  std::filesystem::path checkpoint_;
};

// s quoted for a POSIX shell where it needs to be (spaces, quotes, $, ...), else as it is.
std::string shell_quote(std::string_view s);

// The command line that resumes a run started as `argv` from `checkpoint`: argv with --resume,
// --init-from and --export-init (and their values; the initial weights were exported already)
// left out and "--resume CHECKPOINT" added, each word shell-quoted. `launcher` (for example
// "mpirun -np 2" for a data-parallel run, which resumes with any number of ranks) goes in front,
// as it is.
std::string resume_command(const std::vector<std::string>& argv,
                           const std::filesystem::path& checkpoint, std::string_view launcher = {});

}  // namespace octa
