package dev.aiservice.client;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.aiservice.v1.ChatServiceGrpc;
import dev.aiservice.v1.ListModelsRequest;
import dev.aiservice.v1.ListModelsResponse;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The client key reaches the server as {@code authorization: Bearer <key>}, as a recording
 * server on a loopback port sees it (LiveGatewayTest.clientKeys covers the gateway side).
 */
class ApiKeyTest {
  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private final List<String> seen = Collections.synchronizedList(new ArrayList<>());
  private Server server;

  @BeforeEach
  void start() throws Exception {
    ServerInterceptor record =
        new ServerInterceptor() {
          @Override
          public <Q, R> ServerCall.Listener<Q> interceptCall(
              ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
            seen.add(String.valueOf(headers.get(AUTHORIZATION)));
            return next.startCall(call, headers);
          }
        };
    ChatServiceGrpc.ChatServiceImplBase service =
        new ChatServiceGrpc.ChatServiceImplBase() {
          @Override
          public void listModels(ListModelsRequest request, StreamObserver<ListModelsResponse> response) {
            response.onNext(ListModelsResponse.getDefaultInstance());
            response.onCompleted();
          }
        };
    server =
        Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
            .addService(ServerInterceptors.intercept(service, record))
            .build()
            .start();
  }

  @AfterEach
  void stop() throws InterruptedException {
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  @Test
  void sendsTheKeyAsABearerHeader() throws InterruptedException {
    String target = "127.0.0.1:" + server.getPort();
    try (AiServiceClient keyed = AiServiceClient.forTarget(target).plaintext().apiKey("k-123").build();
        AiServiceClient anonymous = AiServiceClient.forTarget(target).plaintext().build()) {
      keyed.chat().withDeadlineAfter(10, TimeUnit.SECONDS).listModels(ListModelsRequest.getDefaultInstance());
      anonymous.chat().withDeadlineAfter(10, TimeUnit.SECONDS).listModels(ListModelsRequest.getDefaultInstance());
    }
    assertEquals(List.of("Bearer k-123", "null"), seen);
  }
}
