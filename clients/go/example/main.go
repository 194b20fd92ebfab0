// Command example asks ai-service one question, first whole and then streamed.
//
//	go run ./example -addr 127.0.0.1:8080 -plaintext "hello world"
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/ai-service/ai-service/clients/go/aiservice"
	aiservicev1 "github.com/ai-service/ai-service/clients/go/aiservicev1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "gateway address")
	plaintext := flag.Bool("plaintext", false, "connect without TLS")
	model := flag.String("model", "echo", "route to call")
	flag.Parse()
	prompt := strings.Join(flag.Args(), " ")
	if prompt == "" {
		prompt = "hello world"
	}

	opts := []aiservice.Option{aiservice.WithAPIKey(os.Getenv("AI_SERVICE_KEY"))}
	if *plaintext {
		opts = append(opts, aiservice.WithPlaintext())
	}
	client, err := aiservice.Dial(*addr, opts...)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	resp, err := client.Chat.Chat(ctx, &aiservicev1.ChatRequest{
		Model:    *model,
		Messages: []*aiservicev1.Message{aiservice.UserText(prompt)},
	})
	if err != nil {
		log.Fatalf("Chat: %v (details: %+v)", err, aiservice.ErrorDetails(err))
	}
	fmt.Printf("Chat: %q (%d tokens)\n", aiservice.Text(resp.GetMessage()), resp.GetUsage().GetTotalTokens())

	stream, err := client.Chat.StreamChat(ctx, &aiservicev1.StreamChatRequest{
		Model:    *model,
		Messages: []*aiservicev1.Message{aiservice.UserText(prompt)},
	})
	if err != nil {
		log.Fatal(err)
	}
	result, err := aiservice.Collect(stream)
	if err != nil {
		log.Fatalf("StreamChat: %v", err)
	}
	fmt.Printf("StreamChat: %q (%s)\n", result.Text, result.Finish.GetReason())
}
