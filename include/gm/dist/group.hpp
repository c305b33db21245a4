#pragma once
/// @file
/// `gm::dist`: data-parallel processes on torch's c10d: where a process stands (rank, world size) from the
/// launcher's environment (torchrun or Slurm), and a process group through a TCPStore hosted by rank 0: Gloo
/// for CPU tensors, NCCL for CUDA ones (in a build against a CUDA LibTorch, where CMake defines
/// GM_WITH_CUDA).  A process that no launcher started runs alone, with no store and no group.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/dist/data_parallel.hpp>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/types.h>

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#if GM_HEADER_DEFINITIONS  // what only the definitions need
// LibTorch's headers hide each backend behind the macro its own build defines; the wheel and the official
// zips are built with Gloo (and, with CUDA, NCCL), whose code is in libtorch_cpu (libtorch_cuda).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#if defined(GM_WITH_CUDA) && GM_WITH_CUDA
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace gm::dist {

/// Where this process stands, from its environment.
struct Env {
  int64_t rank = 0;        ///< global rank
  int64_t world = 1;       ///< number of processes
  int64_t local_rank = 0;  ///< rank on this node (picks the GPU)
  std::string master_addr = "127.0.0.1";  ///< host of rank 0, which hosts the TCPStore
  int port = 29500;                        ///< the store's port
  std::string launcher = "none";           ///< none, torchrun or slurm
  bool distributed() const { return world > 1; }
};

namespace detail {
const char* get(const char* name);
#if GM_HEADER_DEFINITIONS
GM_INLINE const char* get(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}
#endif
int64_t integer(const char* name, int64_t lo, int64_t hi);
#if GM_HEADER_DEFINITIONS
GM_INLINE int64_t integer(const char* name, int64_t lo, int64_t hi) {
  const char* v = get(name);
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi) {
    throw Error(std::string("gm: environment variable ") + name + "='" + v + "' is not an integer in [" +
                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return x;
}
#endif
}  // namespace detail

/// The environment's answer: torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; else
/// Slurm's SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID (rank 0's host: MASTER_ADDR, else
/// SLURM_LAUNCH_NODE_IPADDR, the node srun ran on; port: MASTER_PORT, else 29500 + SLURM_JOB_ID mod 1000, so
/// jobs sharing a node do not collide); else one process alone.  A malformed value is a one-line `gm::Error`
/// naming the variable.
Env environment();
#if GM_HEADER_DEFINITIONS
GM_INLINE Env environment() {
  Env e;
  using detail::get;
  using detail::integer;
  if (get("WORLD_SIZE") || get("RANK")) {
    if (!get("WORLD_SIZE") || !get("RANK")) throw Error("gm: RANK and WORLD_SIZE must be set together (torchrun sets both)");
    e.launcher = "torchrun";
    e.world = integer("WORLD_SIZE", 1, 1 << 20);
    e.rank = integer("RANK", 0, e.world - 1);
    e.local_rank = get("LOCAL_RANK") ? integer("LOCAL_RANK", 0, e.world - 1) : 0;
  } else if (get("SLURM_PROCID") && get("SLURM_NTASKS")) {
    e.launcher = "slurm";
    e.world = integer("SLURM_NTASKS", 1, 1 << 20);
    e.rank = integer("SLURM_PROCID", 0, e.world - 1);
    e.local_rank = get("SLURM_LOCALID") ? integer("SLURM_LOCALID", 0, e.world - 1) : 0;
    if (get("SLURM_LAUNCH_NODE_IPADDR")) e.master_addr = get("SLURM_LAUNCH_NODE_IPADDR");
    if (get("SLURM_JOB_ID")) e.port = 29500 + static_cast<int>(integer("SLURM_JOB_ID", 0, INT64_MAX) % 1000);
  } else {
    return e;
  }
  if (get("MASTER_ADDR")) e.master_addr = get("MASTER_ADDR");
  if (get("MASTER_PORT")) e.port = static_cast<int>(integer("MASTER_PORT", 1, 65535));
  return e;
}
#endif

/// Raised when a collective fails because another rank died, hung past the timeout, or its connection
/// broke: one line naming this rank and the collective.  Not bad input, so an experiment exits with
/// `exit_code::failure` (1).
class PeerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Whether this build can make NCCL groups (it was compiled against a CUDA LibTorch).
inline constexpr bool has_nccl() {
#if defined(GM_WITH_CUDA) && GM_WITH_CUDA
  return true;
#else
  return false;
#endif
}

/// A group of data-parallel processes on a c10d backend: Gloo when `device` is the CPU, NCCL when it is a
/// CUDA device (one GPU per rank: `device` should be cuda:<local rank>); or a process alone, for which every
/// collective is the identity.  Rank 0 hosts the TCPStore; the others connect to it.  `timeout` bounds every
/// wait: a rank that dies makes the others fail with a `gm::dist::PeerError` within it instead of hanging.
/// GLOO_SOCKET_IFNAME picks Gloo's network interface, as for torch.distributed; NCCL reads its own NCCL_*
/// variables.  Collectives take tensors on any device: a CPU tensor given to an NCCL group is reduced on the
/// GPU and copied back.
class Group {
 public:
  Group() = default;  ///< alone
  /// `even_alone`: make the group for a world of 1 too (a check of the backend on one process or GPU).
  explicit Group(const Env& env, std::chrono::milliseconds timeout = std::chrono::minutes(5),
                 torch::Device device = torch::kCPU, bool even_alone = false);
  /// Shuts the backend down (NCCL's communicators and watchdog), as torch.distributed.destroy_process_group.
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;
  Group(Group&&) = default;
  Group& operator=(Group&&) = default;

  /// "gloo", "nccl", or "none" for a process alone.
  std::string backend() const { return pg_ ? pg_->getBackendName() : "none"; }
  int64_t rank() const { return env_.rank; }
  int64_t world() const { return env_.world; }
  bool distributed() const { return static_cast<bool>(pg_); }
  const Env& env() const { return env_; }

  /// Sum `t` over the ranks, in place.
  void all_reduce_sum(torch::Tensor& t);
  /// Rank `root`'s `t` to every rank, in place.
  void broadcast(torch::Tensor& t, int64_t root = 0);
  /// Whether `flag` is true on any rank (pre-emption: every rank stops at the same step).
  bool any(bool flag);
  /// Wait until every rank is here.
  void barrier();

 private:
  template <class F>
  void run(const char* what, F&& start) {
    if (!pg_) return;
    try {
      auto work = start();
      // Bounded by the group's timeout: a dead peer is this PeerError, not NCCL's watchdog aborting the process.
      if (!work->wait(timeout_)) throw std::runtime_error("timed out after " + std::to_string(timeout_.count()) + " ms");
    } catch (const std::exception& e) {
      std::string msg = e.what();
      if (const auto* c = dynamic_cast<const c10::Error*>(&e)) msg = c->what_without_backtrace();
      throw PeerError("gm: rank " + std::to_string(env_.rank) + ": " + what + " failed (another rank died or timed out): " +
                  first_line(msg));
    }
  }
  static std::string hostname();

  /// Run `f` on `t` where the backend wants it: in place when it is on the group's kind of device, else
  /// on a copy there, copied back.
  template <class F>
  void on_device(torch::Tensor& t, F&& f) {
    if (!pg_) return;
    if (t.device().type() == device_.type()) return f(t);
    auto d = t.to(device_);
    f(d);
    t.copy_(d);
  }
  c10::intrusive_ptr<c10d::Backend> make_nccl(const c10::intrusive_ptr<c10d::Store>& store,
                                              std::chrono::milliseconds timeout);

  Env env_;
  torch::Device device_ = torch::kCPU;
  std::chrono::milliseconds timeout_{std::chrono::minutes(5)};
  c10::intrusive_ptr<c10d::Backend> pg_;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE Group::Group(const Env& env, std::chrono::milliseconds timeout, torch::Device device, bool even_alone)
    : env_(env), device_(device), timeout_(timeout) {
  if (!env_.distributed() && !even_alone) return;
  if (device_.is_cuda() && !has_nccl()) {
    throw Error("gm: data-parallel training on " + device_.str() + " needs NCCL, and this build of gm was compiled "
                "against a LibTorch without CUDA");
  }
  try {
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(env_.port);
    o.isServer = env_.rank == 0;
    o.numWorkers = static_cast<std::size_t>(env_.world);
    o.waitWorkers = true;
    o.timeout = timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(env_.master_addr, o);
    if (device_.is_cuda()) {
      pg_ = make_nccl(store, timeout);
    } else {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } else {
        const bool local = env_.master_addr == "127.0.0.1" || env_.master_addr == "localhost";
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(local ? env_.master_addr : hostname()));
      }
      pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(env_.rank),
                                                        static_cast<int>(env_.world),
                                                        opts);
    }
  } catch (const c10::Error& e) {
    throw Error("gm: rank " + std::to_string(env_.rank) + " could not join the process group at " + env_.master_addr +
                ":" + std::to_string(env_.port) + ": " + first_line(e.what_without_backtrace()));
  }
}

GM_INLINE Group::~Group() {
  if (!pg_) return;
  try {
    pg_->shutdown();
  } catch (...) {  // a peer already gone: nothing left to release in order
  }
}

GM_INLINE void Group::all_reduce_sum(torch::Tensor& t) {
  on_device(t, [&](torch::Tensor& d) {
    run("all-reduce", [&] {
      std::vector<at::Tensor> v{d};
      return pg_->allreduce(v);
    });
  });
}

GM_INLINE void Group::broadcast(torch::Tensor& t, int64_t root) {
  on_device(t, [&](torch::Tensor& d) {
    run("broadcast", [&] {
      std::vector<at::Tensor> v{d};
      c10d::BroadcastOptions o;
      o.rootRank = root;
      return pg_->broadcast(v, o);
    });
  });
}

GM_INLINE auto Group::any(bool flag) -> bool {
  if (!pg_) return flag;
  auto t = torch::full({1}, flag ? 1.0 : 0.0, torch::kFloat64);
  all_reduce_sum(t);
  return t.item<double>() > 0;
}

GM_INLINE void Group::barrier() {
  if (!pg_) return;
  auto t = torch::zeros({1});
  all_reduce_sum(t);  // a collective every rank must enter, bounded by the group's timeout
}

GM_INLINE auto Group::hostname() -> std::string {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

GM_INLINE auto Group::make_nccl(const c10::intrusive_ptr<c10d::Store>& store, std::chrono::milliseconds timeout)
    -> c10::intrusive_ptr<c10d::Backend> {
#if defined(GM_WITH_CUDA) && GM_WITH_CUDA
  // NCCL binds its communicator to the current device: make it this rank's before the group exists.
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(device_.index() < 0 ? 0 : device_.index()));
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, static_cast<int>(env_.rank), static_cast<int>(env_.world),
                                                     opts);
#else
  return {};  // unreachable: the constructor refuses CUDA devices without NCCL
#endif
}
#endif  // GM_HEADER_DEFINITIONS

/// A trainer's data-parallel collectives on `group` (which must outlive the trainer's use of them).
DataParallel data_parallel(Group& group);
#if GM_HEADER_DEFINITIONS
GM_INLINE DataParallel data_parallel(Group& group) {
  DataParallel dp;
  dp.rank = group.rank();
  dp.world = group.world();
  dp.all_reduce_sum = [&group](torch::Tensor& t) { group.all_reduce_sum(t); };
  dp.broadcast = [&group](torch::Tensor& t) { group.broadcast(t); };
  return dp;
}
#endif

}  // namespace gm::dist
