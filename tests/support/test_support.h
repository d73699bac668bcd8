// Helpers shared by tests: temp dirs, waiting on conditions with a deadline, child processes, free ports.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace bff::testing {

// A fresh directory under $TMPDIR, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Polls `cond` until it is true or `timeout` passes; returns the final value. Not a sleep-as-sync:
// callers wait for an observable condition.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A child process with captured stdout/stderr (to files); killed (SIGKILL) on destruction if running.
class ChildProcess {
 public:
  ChildProcess(const std::string& exe, const std::vector<std::string>& args, const std::string& log_dir);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  int pid() const { return pid_; }
  bool running();
  void Signal(int sig);
  // Waits for exit; returns the exit status (or 128+signal), or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  int pid_ = -1;
  int status_ = -1;
  bool exited_ = false;
  std::string out_path_, err_path_;
};

std::string BinPath(const std::string& name);  // build/bin/<name>
std::string ReadFile(const std::string& path);

}  // namespace bff::testing
