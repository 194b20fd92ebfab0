package dev.aiservice.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import dev.aiservice.v1.ChatRequest;
import dev.aiservice.v1.ChatResponse;
import dev.aiservice.v1.EmbedRequest;
import dev.aiservice.v1.EmbedResponse;
import dev.aiservice.v1.FinishReason;
import dev.aiservice.v1.GenerationConfig;
import dev.aiservice.v1.ListModelsRequest;
import dev.aiservice.v1.Model;
import dev.aiservice.v1.Role;
import dev.aiservice.v1.StreamChatRequest;
import dev.aiservice.v1.StreamChatResponse;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.stub.MetadataUtils;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Calls running gateways: AI_SERVICE_ADDR (the echo provider, no keys) and
 * AI_SERVICE_FAULTS_ADDR (route "slow": echo with 200ms between deltas; route "limited": an
 * upstream that always answers 429 with Retry-After: 7) and AI_SERVICE_AUTH_ADDR (client keys
 * required: AI_SERVICE_AUTH_KEY for every route, AI_SERVICE_AUTH_OTHER_KEY for route "other"
 * only). {@code make test} starts them and sets the variables; without AI_SERVICE_ADDR the
 * tests are skipped.
 */
class LiveGatewayTest {
  private static AiServiceClient client;
  private static AiServiceClient faults;

  private static final ChatRequest HELLO =
      ChatRequest.newBuilder().setModel("echo").addMessages(AiServiceClient.user("hello world")).build();
  private static final StreamChatRequest STREAM_HELLO =
      StreamChatRequest.newBuilder().setModel("echo").addMessages(AiServiceClient.user("hello world")).build();

  @BeforeAll
  static void connect() {
    String addr = System.getenv("AI_SERVICE_ADDR");
    assumeTrue(addr != null && !addr.isEmpty(), "AI_SERVICE_ADDR is not set; `make test` sets it");
    String faultsAddr = System.getenv("AI_SERVICE_FAULTS_ADDR");
    if (faultsAddr == null || faultsAddr.isEmpty()) {
      fail("AI_SERVICE_FAULTS_ADDR is not set but AI_SERVICE_ADDR is: start the second server too");
    }
    client = AiServiceClient.forTarget(addr).plaintext().build();
    faults = AiServiceClient.forTarget(faultsAddr).plaintext().build();
  }

  @AfterAll
  static void close() throws InterruptedException {
    if (client != null) {
      client.close();
    }
    if (faults != null) {
      faults.close();
    }
  }

  private static List<String> kinds(List<StreamChatResponse> events) {
    return events.stream().map(e -> e.getEventCase().name()).collect(Collectors.toList());
  }

  @Test
  void chatBlocking() {
    ChatResponse reply = client.chat().withDeadlineAfter(10, TimeUnit.SECONDS).chat(HELLO);
    assertEquals("hello world", AiServiceClient.text(reply.getMessage()));
    assertEquals(Role.ROLE_ASSISTANT, reply.getMessage().getRole());
    assertEquals(FinishReason.FINISH_REASON_STOP, reply.getFinishReason());
    assertEquals(2, reply.getUsage().getInputTokens());
    assertEquals(2, reply.getUsage().getOutputTokens());
    assertEquals(4, reply.getUsage().getTotalTokens());
  }

  @Test
  void reasoningComesBackSignedAndGoesBack() {
    dev.aiservice.v1.GenerationConfig generation =
        dev.aiservice.v1.GenerationConfig.newBuilder()
            .setReasoning(
                dev.aiservice.v1.ReasoningConfig.newBuilder()
                    .setEffort(dev.aiservice.v1.ReasoningEffort.REASONING_EFFORT_LOW))
            .build();
    StreamResult result =
        StreamResult.collect(
            client
                .chat()
                .withDeadlineAfter(10, TimeUnit.SECONDS)
                .streamChat(STREAM_HELLO.toBuilder().setGeneration(generation).build()));
    assertEquals(1, result.reasoning().size());
    assertEquals("Reasoning about 2 words.", result.reasoning().get(0).getText());
    assertEquals("echo-2", result.reasoning().get(0).getSignature());
    assertEquals("hello world", result.text());
    dev.aiservice.v1.Message.Builder assistant =
        dev.aiservice.v1.Message.newBuilder().setRole(Role.ROLE_ASSISTANT);
    for (dev.aiservice.v1.Reasoning part : result.reasoning()) {
      assistant.addContent(dev.aiservice.v1.ContentPart.newBuilder().setReasoning(part));
    }
    assistant.addContent(dev.aiservice.v1.ContentPart.newBuilder().setText(result.text()));
    ChatRequest next =
        HELLO.toBuilder()
            .addMessages(assistant)
            .addMessages(AiServiceClient.user("again please"))
            .setGeneration(generation)
            .build();
    ChatResponse reply = client.chat().withDeadlineAfter(10, TimeUnit.SECONDS).chat(next);
    assertEquals("again please", AiServiceClient.text(reply.getMessage()));
    assertEquals("echo-2", reply.getMessage().getContent(0).getReasoning().getSignature());
  }

  @Test
  void chatFuture() throws Exception {
    ChatResponse reply = client.chatFuture().withDeadlineAfter(10, TimeUnit.SECONDS).chat(HELLO).get();
    assertEquals("hello world", AiServiceClient.text(reply.getMessage()));
  }

  @Test
  void chatMaxTokensCutsWithLength() {
    ChatRequest request =
        HELLO.toBuilder().setGeneration(GenerationConfig.newBuilder().setMaxTokens(1)).build();
    ChatResponse reply = client.chat().withDeadlineAfter(10, TimeUnit.SECONDS).chat(request);
    assertEquals("hello ", AiServiceClient.text(reply.getMessage()));
    assertEquals(FinishReason.FINISH_REASON_LENGTH, reply.getFinishReason());
  }

  @Test
  void streamChatBlockingEventsInOrder() {
    StreamResult result =
        StreamResult.collect(client.chat().withDeadlineAfter(10, TimeUnit.SECONDS).streamChat(STREAM_HELLO));
    assertEquals(List.of("CONTENT_DELTA", "CONTENT_DELTA", "USAGE", "FINISH"), kinds(result.events()));
    assertEquals("hello ", result.events().get(0).getContentDelta().getText());
    assertEquals("world", result.events().get(1).getContentDelta().getText());
    assertEquals("hello world", result.text());
    assertEquals(2, result.usage().getInputTokens());
    assertEquals(2, result.usage().getOutputTokens());
    assertEquals(FinishReason.FINISH_REASON_STOP, result.finish().getReason());
    assertEquals("echo", result.finish().getModel());
  }

  @Test
  void streamChatAsyncEventsInOrder() throws Exception {
    StreamResult.Collector observer = StreamResult.observer();
    client.chatAsync().withDeadlineAfter(10, TimeUnit.SECONDS).streamChat(STREAM_HELLO, observer);
    StreamResult result = observer.result().get(10, TimeUnit.SECONDS);
    assertEquals(List.of("CONTENT_DELTA", "CONTENT_DELTA", "USAGE", "FINISH"), kinds(result.events()));
    assertEquals("hello world", result.text());
    assertEquals(FinishReason.FINISH_REASON_STOP, result.finish().getReason());
  }

  @Test
  void listModels() {
    List<String> names =
        client.chat().withDeadlineAfter(10, TimeUnit.SECONDS).listModels(ListModelsRequest.getDefaultInstance())
            .getModelsList().stream().map(Model::getName).collect(Collectors.toList());
    assertTrue(names.contains("echo"), "models " + names);
  }

  @Test
  void healthCheck() {
    for (String service : List.of("", "aiservice.v1.ChatService")) {
      HealthCheckResponse reply =
          client.health().withDeadlineAfter(10, TimeUnit.SECONDS)
              .check(HealthCheckRequest.newBuilder().setService(service).build());
      assertEquals(HealthCheckResponse.ServingStatus.SERVING, reply.getStatus(), "service " + service);
    }
  }

  private static void assertInvalid(StatusRuntimeException e, String field) {
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), e.toString());
    AiServiceClient.ErrorDetails details = AiServiceClient.errorDetails(e);
    ErrorInfo info = details.info().orElseThrow();
    assertEquals(AiServiceClient.ERROR_DOMAIN, info.getDomain());
    assertEquals("INVALID_REQUEST", info.getReason());
    BadRequest bad = details.badRequest().orElseThrow();
    Map<String, String> violations =
        bad.getFieldViolationsList().stream()
            .collect(Collectors.toMap(BadRequest.FieldViolation::getField, BadRequest.FieldViolation::getDescription));
    assertTrue(violations.containsKey(field), "violations " + violations);
    assertFalse(violations.get(field).isEmpty());
  }

  @Test
  void emptyMessagesIsInvalidArgumentBlocking() {
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class,
            () -> client.chat().withDeadlineAfter(10, TimeUnit.SECONDS).chat(ChatRequest.newBuilder().setModel("echo").build()));
    assertInvalid(e, "messages");
  }

  @Test
  void negativeMaxTokensIsInvalidArgumentAsync() throws Exception {
    ChatRequest request =
        HELLO.toBuilder().setGeneration(GenerationConfig.newBuilder().setMaxTokens(-1)).build();
    CompletableFuture<ChatResponse> future = new CompletableFuture<>();
    client.chatAsync().withDeadlineAfter(10, TimeUnit.SECONDS).chat(request, new io.grpc.stub.StreamObserver<>() {
      @Override public void onNext(ChatResponse value) { future.complete(value); }
      @Override public void onError(Throwable t) { future.completeExceptionally(t); }
      @Override public void onCompleted() {}
    });
    ExecutionException e = assertThrows(ExecutionException.class, () -> future.get(10, TimeUnit.SECONDS));
    assertInvalid(assertInstanceOf(StatusRuntimeException.class, e.getCause()), "generation.max_tokens");
  }

  @Test
  void unknownModelIsNotFound() {
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class,
            () -> client.chat().withDeadlineAfter(10, TimeUnit.SECONDS).chat(HELLO.toBuilder().setModel("no-such-model").build()));
    assertEquals(Status.Code.NOT_FOUND, e.getStatus().getCode());
    ErrorInfo info = AiServiceClient.errorDetails(e).info().orElseThrow();
    assertEquals(AiServiceClient.ERROR_DOMAIN, info.getDomain());
    assertEquals("MODEL_NOT_FOUND", info.getReason());
    assertEquals("no-such-model", info.getMetadataMap().get("model"));
  }

  private static final StreamChatRequest SLOW =
      StreamChatRequest.newBuilder().setModel("slow").addMessages(AiServiceClient.user("one two three four five")).build();

  @Test
  void streamDeadlineExpiresBlocking() {
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class,
            () -> StreamResult.collect(faults.chat().withDeadlineAfter(100, TimeUnit.MILLISECONDS).streamChat(SLOW)));
    assertEquals(Status.Code.DEADLINE_EXCEEDED, e.getStatus().getCode());
  }

  @Test
  void streamDeadlineExpiresAsync() {
    StreamResult.Collector observer = StreamResult.observer();
    faults.chatAsync().withDeadlineAfter(100, TimeUnit.MILLISECONDS).streamChat(SLOW, observer);
    ExecutionException e = assertThrows(ExecutionException.class, () -> observer.result().get(10, TimeUnit.SECONDS));
    StatusRuntimeException status = assertInstanceOf(StatusRuntimeException.class, e.getCause());
    assertEquals(Status.Code.DEADLINE_EXCEEDED, status.getStatus().getCode());
  }

  @Test
  void upstreamRateLimitIsResourceExhaustedWithRetryInfo() {
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class,
            () -> faults.chat().withDeadlineAfter(10, TimeUnit.SECONDS).chat(HELLO.toBuilder().setModel("limited").build()));
    assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode(), e.toString());
    AiServiceClient.ErrorDetails details = AiServiceClient.errorDetails(e);
    ErrorInfo info = details.info().orElseThrow();
    assertEquals(AiServiceClient.ERROR_DOMAIN, info.getDomain());
    assertEquals("UPSTREAM_RATE_LIMITED", info.getReason());
    // The upstream asked for 7s; later calls see what is left of it.
    com.google.protobuf.Duration delay = details.retryInfo().orElseThrow().getRetryDelay();
    long millis = delay.getSeconds() * 1000 + delay.getNanos() / 1_000_000;
    assertTrue(millis > 0 && millis <= 7000, "retry delay " + millis + "ms");
  }

  private static StatusRuntimeException chatWithKey(String key) throws InterruptedException {
    String target = System.getenv("AI_SERVICE_AUTH_ADDR");
    if (target == null || target.isEmpty()) {
      fail("AI_SERVICE_AUTH_ADDR is not set but AI_SERVICE_ADDR is: start the third server too");
    }
    AiServiceClient.Builder builder = AiServiceClient.forTarget(target).plaintext();
    if (key != null) {
      builder.apiKey(key);
    }
    try (AiServiceClient keyed = builder.build()) {
      keyed.chat().withDeadlineAfter(10, TimeUnit.SECONDS).chat(HELLO);
      return null;
    } catch (StatusRuntimeException e) {
      return e;
    }
  }

  @Test
  void clientKeys() throws InterruptedException {
    StatusRuntimeException none = chatWithKey(null);
    assertEquals(Status.Code.UNAUTHENTICATED, none == null ? Status.Code.OK : none.getStatus().getCode());
    assertEquals("UNAUTHENTICATED", AiServiceClient.errorDetails(none).info().orElseThrow().getReason());

    StatusRuntimeException wrong = chatWithKey("not-a-key");
    assertEquals(Status.Code.UNAUTHENTICATED, wrong == null ? Status.Code.OK : wrong.getStatus().getCode());

    StatusRuntimeException other = chatWithKey(System.getenv("AI_SERVICE_AUTH_OTHER_KEY"));
    assertEquals(Status.Code.PERMISSION_DENIED, other == null ? Status.Code.OK : other.getStatus().getCode());
    assertEquals("ROUTE_NOT_ALLOWED", AiServiceClient.errorDetails(other).info().orElseThrow().getReason());

    StatusRuntimeException valid = chatWithKey(System.getenv("AI_SERVICE_AUTH_KEY"));
    assertEquals(null, valid, () -> "a valid key was refused: " + valid);
  }

  @Test
  void apiKeyDoesNotBreakPlaintextCalls() throws InterruptedException {
    // The echo gateway requires no key; a key sent anyway must not break plaintext calls.
    try (AiServiceClient keyed =
        AiServiceClient.forTarget(System.getenv("AI_SERVICE_ADDR")).plaintext().apiKey("test-key").build()) {
      assertEquals("hello world",
          AiServiceClient.text(keyed.chat().withDeadlineAfter(10, TimeUnit.SECONDS).chat(HELLO).getMessage()));
    }
  }

  private static final Metadata.Key<String> REQUEST_ID =
      Metadata.Key.of("x-request-id", Metadata.ASCII_STRING_MARSHALLER);

  @Test
  void requestIdComesBack() {
    Metadata sent = new Metadata();
    sent.put(REQUEST_ID, "java-unary-1");
    AtomicReference<Metadata> headers = new AtomicReference<>();
    AtomicReference<Metadata> trailers = new AtomicReference<>();
    client.chat()
        .withInterceptors(
            MetadataUtils.newAttachHeadersInterceptor(sent),
            MetadataUtils.newCaptureMetadataInterceptor(headers, trailers))
        .withDeadlineAfter(10, TimeUnit.SECONDS)
        .chat(HELLO);
    assertEquals("java-unary-1", headers.get().get(REQUEST_ID));

    client.chat()
        .withInterceptors(MetadataUtils.newCaptureMetadataInterceptor(headers, trailers))
        .withDeadlineAfter(10, TimeUnit.SECONDS)
        .chat(HELLO);
    String generated = headers.get().get(REQUEST_ID);
    assertTrue(generated != null && !generated.isEmpty(), "generated x-request-id " + generated);
  }

  @Test
  void requestIdComesBackWithAnError() {
    // A failed call is answered trailers-only: the id comes back with the status.
    Metadata sent = new Metadata();
    sent.put(REQUEST_ID, "java-error-1");
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class,
            () -> client.chat()
                .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(sent))
                .withDeadlineAfter(10, TimeUnit.SECONDS)
                .chat(ChatRequest.newBuilder().setModel("echo").build()));
    assertEquals("java-error-1", e.getTrailers().get(REQUEST_ID));
  }

  @Test
  void embedInBytesAndFloats() {
    EmbedResponse bytes =
        client.embed().withDeadlineAfter(10, TimeUnit.SECONDS)
            .embed(AiServiceClient.embedRequest("echo", 0, "a cat", "a dog"));
    List<float[]> vectors = AiServiceClient.vectors(bytes);
    assertEquals(2, vectors.size());
    assertEquals(8, vectors.get(0).length);
    assertEquals(4, bytes.getUsage().getInputTokens());
    EmbedResponse floats =
        client.embed().withDeadlineAfter(10, TimeUnit.SECONDS)
            .embed(EmbedRequest.newBuilder().setModel("echo").addInputs("a dog").build());
    org.junit.jupiter.api.Assertions.assertArrayEquals(
        vectors.get(1), AiServiceClient.vectors(floats).get(0));
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class,
            () -> client.embed().withDeadlineAfter(10, TimeUnit.SECONDS)
                .embed(AiServiceClient.embedRequest("echo", 0, "ok", "")));
    assertInvalid(e, "inputs[1]");
  }
}
