#include "driver/server.h"

#include <grpcpp/support/server_interceptor.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/fd.h"
#include "base/logging.h"
#include "base/status.h"

namespace rbdcsi {
namespace {

// True when something accepts connections on the socket at `path`.
bool SomeoneListens(const std::string& path) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  return connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

// gRPC answers a request it cannot decode (a string field that is not UTF-8, truncated bytes)
// with INTERNAL before any handler runs. The request is the client's fault: INVALID_ARGUMENT,
// as CSI asks, and one log line like every other call's.
class MalformedRequestInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit MalformedRequestInterceptor(std::string method) : method_(std::move(method)) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      undecodable_ = true;
    }
    if (undecodable_ &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) &&
        methods->GetSendStatus().error_code() == grpc::StatusCode::INTERNAL) {
      static const auto logger = Logger("rpc");
      logger->warn("method={} code=INVALID_ARGUMENT error=\"the request could not be decoded\"",
                   method_);
      methods->ModifySendStatus(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "the request is not a valid csi.v1 message (a string field that is not UTF-8, or "
          "malformed bytes)"));
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  bool undecodable_ = false;
};

class MalformedRequestInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MalformedRequestInterceptor(info->method() != nullptr ? info->method() : "");
  }
};

}  // namespace

absl::Status PrepareSocketPath(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoToStatus(errno, absl::StrCat("checking socket path ", path));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket path ", path, " exists and is not a socket; refusing to remove it"));
  }
  if (SomeoneListens(path)) {
    return absl::FailedPreconditionError(absl::StrCat("another server is already listening on ",
                                                      path,
                                                      "; stop it first or use another --endpoint"));
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoToStatus(errno, absl::StrCat("removing stale socket ", path));
  }
  Logger("server")->info("removed stale socket {}", path);
  return absl::OkStatus();
}

Server::~Server() {
  if (server_) Shutdown();
}

absl::Status Server::Start() {
  const std::string& path = options_.socket_path;
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("creating socket directory ", parent.string(), ": ", ec.message()));
  }
  RETURN_IF_ERROR(PrepareSocketPath(path));
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort(absl::StrCat("unix:", path), grpc::InsecureServerCredentials(), &bound);
  for (grpc::Service* s : services_) builder.RegisterService(s);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<MalformedRequestInterceptorFactory>());
  builder.experimental().SetInterceptorCreators(std::move(factories));
  server_ = builder.BuildAndStart();
  if (!server_ || bound == 0) {
    server_.reset();
    return absl::UnavailableError(absl::StrCat("could not listen on unix socket ", path));
  }
  if (chmod(path.c_str(), 0660) != 0) {
    absl::Status st = ErrnoToStatus(errno, absl::StrCat("setting mode 0660 on ", path));
    Shutdown();
    return st;
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) socket_inode_ = st.st_ino;
  Logger("server")->info("serving on unix:{}", path);
  return absl::OkStatus();
}

void Server::Shutdown() {
  if (!server_) return;
  Logger("server")->info("stopping: waiting up to {} ms for calls in flight",
                         options_.grace.count());
  const bool idle = tracker_.Drain(std::chrono::steady_clock::now() + options_.grace);
  if (!idle)
    Logger("server")->warn("calls still in flight after the grace period; cancelling them");
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
  struct stat st {};
  if (lstat(options_.socket_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
      st.st_ino == socket_inode_) {
    unlink(options_.socket_path.c_str());
  }
  Logger("server")->info("stopped");
}

}  // namespace rbdcsi
