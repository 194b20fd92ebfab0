package dev.aiservice.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import dev.aiservice.v1.ChatServiceGrpc;
import dev.aiservice.v1.ContentPart;
import dev.aiservice.v1.EmbedRequest;
import dev.aiservice.v1.EmbedResponse;
import dev.aiservice.v1.EmbedServiceGrpc;
import dev.aiservice.v1.Embedding;
import dev.aiservice.v1.EmbeddingEncoding;
import dev.aiservice.v1.Message;
import dev.aiservice.v1.Role;
import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.TlsChannelCredentials;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.MetadataUtils;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * A thin layer over the generated ai-service stubs ({@code dev.aiservice.v1}): a channel to
 * the gateway (TLS or plaintext, with an optional client key sent as {@code authorization:
 * Bearer <key>}), the chat, embeddings and health stubs on it, the vectors of an Embed answer
 * whatever their encoding ({@link #vectors}), and the decoding of the rich error details
 * ({@code google.rpc.ErrorInfo}, {@code BadRequest}, {@code RetryInfo}) that the gateway
 * attaches to every failure. Streams are collected with {@link StreamResult}.
 */
public final class AiServiceClient implements AutoCloseable {
  /** The {@code google.rpc.ErrorInfo} domain of every error the gateway returns. */
  public static final String ERROR_DOMAIN = "ai-service";

  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private final ManagedChannel channel;
  private final Channel calls;

  private AiServiceClient(ManagedChannel channel, String apiKey) {
    this.channel = channel;
    if (apiKey == null || apiKey.isEmpty()) {
      this.calls = channel;
    } else {
      Metadata headers = new Metadata();
      headers.put(AUTHORIZATION, "Bearer " + apiKey);
      this.calls =
          ClientInterceptors.intercept(channel, MetadataUtils.newAttachHeadersInterceptor(headers));
    }
  }

  /** Starts building a client for {@code target} ("host:port" or any gRPC target). */
  public static Builder forTarget(String target) {
    return new Builder(target);
  }

  /** Options of a client; TLS with the system's roots unless {@link #plaintext()}. */
  public static final class Builder {
    private final String target;
    private boolean plaintext;
    private String apiKey;

    private Builder(String target) {
      this.target = target;
    }

    /** Connects without TLS, for a gateway on localhost or behind a mesh. */
    public Builder plaintext() {
      this.plaintext = true;
      return this;
    }

    /** Sends {@code key} on every call as {@code authorization: Bearer <key>}. */
    public Builder apiKey(String key) {
      this.apiKey = key;
      return this;
    }

    public AiServiceClient build() {
      ManagedChannel channel =
          Grpc.newChannelBuilder(
                  target,
                  plaintext
                      ? InsecureChannelCredentials.create()
                      : TlsChannelCredentials.create())
              .build();
      return new AiServiceClient(channel, apiKey);
    }
  }

  /** The blocking ChatService stub. */
  public ChatServiceGrpc.ChatServiceBlockingStub chat() {
    return ChatServiceGrpc.newBlockingStub(calls);
  }

  /** The asynchronous (StreamObserver) ChatService stub. */
  public ChatServiceGrpc.ChatServiceStub chatAsync() {
    return ChatServiceGrpc.newStub(calls);
  }

  /** The ListenableFuture ChatService stub, for unary calls. */
  public ChatServiceGrpc.ChatServiceFutureStub chatFuture() {
    return ChatServiceGrpc.newFutureStub(calls);
  }

  /** The blocking EmbedService stub. */
  public EmbedServiceGrpc.EmbedServiceBlockingStub embed() {
    return EmbedServiceGrpc.newBlockingStub(calls);
  }

  /** The ListenableFuture EmbedService stub. */
  public EmbedServiceGrpc.EmbedServiceFutureStub embedFuture() {
    return EmbedServiceGrpc.newFutureStub(calls);
  }

  /**
   * An Embed request for {@code inputs} that asks for the vectors as compact little-endian
   * float32 bytes; {@code dimensions} 0 leaves the model's own length.
   */
  public static EmbedRequest embedRequest(String model, int dimensions, String... inputs) {
    EmbedRequest.Builder request =
        EmbedRequest.newBuilder()
            .setModel(model)
            .addAllInputs(Arrays.asList(inputs))
            .setEncoding(EmbeddingEncoding.EMBEDDING_ENCODING_BYTES);
    if (dimensions > 0) {
      request.setDimensions(dimensions);
    }
    return request.build();
  }

  /**
   * The vectors of an Embed answer in input order, whether they came as floats (FLOAT) or as
   * little-endian float32 bytes (BYTES).
   */
  public static List<float[]> vectors(EmbedResponse response) {
    float[][] out = new float[response.getEmbeddingsCount()][];
    for (Embedding e : response.getEmbeddingsList()) {
      int i = e.getIndex();
      if (i >= out.length || out[i] != null) {
        throw new IllegalArgumentException("embedding index " + i + " out of place");
      }
      if (!e.getData().isEmpty()) {
        if (e.getData().size() % 4 != 0) {
          throw new IllegalArgumentException("embedding " + i + " is no float32 bytes");
        }
        ByteBuffer bytes = e.getData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        float[] v = new float[e.getData().size() / 4];
        bytes.asFloatBuffer().get(v);
        out[i] = v;
      } else {
        float[] v = new float[e.getValuesCount()];
        for (int k = 0; k < v.length; k++) {
          v[k] = e.getValues(k);
        }
        out[i] = v;
      }
    }
    return new ArrayList<>(Arrays.asList(out));
  }

  /** The blocking stub of the standard gRPC health service. */
  public HealthGrpc.HealthBlockingStub health() {
    return HealthGrpc.newBlockingStub(calls);
  }

  /** A user message with one text part. */
  public static Message user(String text) {
    return Message.newBuilder()
        .setRole(Role.ROLE_USER)
        .addContent(ContentPart.newBuilder().setText(text))
        .build();
  }

  /** The text parts of a message, joined. */
  public static String text(Message message) {
    return message.getContentList().stream()
        .map(ContentPart::getText)
        .collect(Collectors.joining());
  }

  /** The rich details of a failed call; absent ones are empty. */
  public record ErrorDetails(
      Optional<ErrorInfo> info, Optional<BadRequest> badRequest, Optional<RetryInfo> retryInfo) {}

  /**
   * Decodes the {@code google.rpc.Status} details of a failed call (the {@code
   * grpc-status-details-bin} trailer); an error without them gives empty details.
   */
  public static ErrorDetails errorDetails(Throwable error) {
    com.google.rpc.Status status = StatusProto.fromThrowable(error);
    if (status == null) {
      return new ErrorDetails(Optional.empty(), Optional.empty(), Optional.empty());
    }
    return new ErrorDetails(
        unpack(status, ErrorInfo.class),
        unpack(status, BadRequest.class),
        unpack(status, RetryInfo.class));
  }

  private static <T extends com.google.protobuf.Message> Optional<T> unpack(
      com.google.rpc.Status status, Class<T> type) {
    for (Any detail : status.getDetailsList()) {
      if (detail.is(type)) {
        try {
          return Optional.of(detail.unpack(type));
        } catch (InvalidProtocolBufferException e) {
          return Optional.empty();
        }
      }
    }
    return Optional.empty();
  }

  /** The underlying channel. */
  public ManagedChannel channel() {
    return channel;
  }

  @Override
  public void close() throws InterruptedException {
    channel.shutdown();
    if (!channel.awaitTermination(5, TimeUnit.SECONDS)) {
      channel.shutdownNow();
    }
  }
}
