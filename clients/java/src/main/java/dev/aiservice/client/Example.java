package dev.aiservice.client;

import dev.aiservice.v1.ChatRequest;
import dev.aiservice.v1.ChatResponse;
import dev.aiservice.v1.StreamChatRequest;
import java.util.concurrent.TimeUnit;

/**
 * Asks ai-service one question, whole and then streamed.
 *
 * <pre>mvn -q compile exec:java -Dexec.args="127.0.0.1:8080 hello world"</pre>
 *
 * <p>The first argument is the address (plaintext); the rest is the prompt.
 */
public final class Example {
  private Example() {}

  public static void main(String[] args) throws Exception {
    String addr = args.length > 0 ? args[0] : "127.0.0.1:8080";
    String prompt = args.length > 1 ? String.join(" ", java.util.Arrays.copyOfRange(args, 1, args.length)) : "hello world";
    try (AiServiceClient client =
        AiServiceClient.forTarget(addr).plaintext().apiKey(System.getenv("AI_SERVICE_KEY")).build()) {
      ChatResponse reply =
          client.chat().withDeadlineAfter(30, TimeUnit.SECONDS)
              .chat(ChatRequest.newBuilder().setModel("echo").addMessages(AiServiceClient.user(prompt)).build());
      System.out.printf("Chat: \"%s\" (%d tokens)%n", AiServiceClient.text(reply.getMessage()), reply.getUsage().getTotalTokens());

      StreamResult streamed =
          StreamResult.collect(
              client.chat().withDeadlineAfter(30, TimeUnit.SECONDS)
                  .streamChat(StreamChatRequest.newBuilder().setModel("echo").addMessages(AiServiceClient.user(prompt)).build()));
      System.out.printf("StreamChat: \"%s\" (%s)%n", streamed.text(), streamed.finish().getReason());
    }
  }
}
