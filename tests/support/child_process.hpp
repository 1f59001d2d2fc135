// tests/support/child_process.hpp: running an executable as a child process the test can signal,
// with its stdout and stderr read together from one pipe, and every wait bounded in time (a
// child still running when the object goes is killed with SIGKILL and reaped); and the pid of a
// process that is gone, for tests of what dead writers leave behind.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

extern char** environ;

namespace octa::test {

// The pid of a process that has exited and been reaped: one that is certainly not running.
inline pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

class ChildProcess {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ChildProcess(const std::vector<std::string>& argv) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    read_fd_ = fds[0];
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    REQUIRE(rc == 0);
    ::fcntl(read_fd_, F_SETFL, O_NONBLOCK);
  }

  ~ChildProcess() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    ::close(read_fd_);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& output() const { return output_; }

  void signal(int sig) const {
    if (running()) ::kill(pid_, sig);
  }

  // Reads output until it contains `text` (true) or `timeout` passes or the child exits (false).
  bool wait_for(std::string_view text, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (output_.find(text) == std::string::npos) {
      if (!read_some(deadline)) return output_.find(text) != std::string::npos;
    }
    return true;
  }

  // Waits for the child to end, reading its output: its exit code, or 128 + the signal that
  // killed it (as a shell reports it); -1 when `timeout` passed first (the child is then killed).
  int wait_exit(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (read_some(deadline)) {
    }
    if (exit_code_ == kRunning) {
      // The pipe closed (or the time is up): reap, waiting out the rest of the time.
      while (Clock::now() < deadline && !reap(WNOHANG)) ::usleep(2000);
      if (exit_code_ == kRunning) {
        ::kill(pid_, SIGKILL);
        reap(0);
        return -1;
      }
    }
    return exit_code_;
  }

 private:
  static constexpr int kRunning = -2;

  bool running() const { return exit_code_ == kRunning; }

  bool reap(int flags) {
    int status = 0;
    if (::waitpid(pid_, &status, flags) != pid_) return false;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return true;
  }

  // Reads what is there (waiting up to the deadline); false once the pipe is closed or the
  // deadline passed.
  bool read_some(Clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{read_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<long long>(left, 100))) < 0) return false;
    char buf[4096];
    const ssize_t n = ::read(read_fd_, buf, sizeof buf);
    if (n > 0) {
      output_.append(buf, static_cast<std::size_t>(n));
      return true;
    }
    if (n == 0) return false;  // every writer closed: the child (and its children) ended
    return Clock::now() < deadline;
  }

  pid_t pid_ = -1;
  int read_fd_ = -1;
  int exit_code_ = kRunning;
  std::string output_;
};

}  // namespace octa::test
