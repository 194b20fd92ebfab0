//! The built-in `echo` provider: a deterministic stand-in for a real model, served when no
//! provider is configured so that a newcomer can call the gateway at once, and used by the
//! benchmarks and client tests.
//!
//! It answers with the text of the last user message. A "token" is a word with the
//! whitespace after it; `max_tokens` cuts the answer after that many words (finish reason
//! `LENGTH`) and a stop sequence cuts it before the sequence. When the caller requires a tool
//! call (`REQUIRED` or a named tool), it calls the tool with `{"text": <answer>}`. Streams send
//! one delta per token, `chunk_delay` apart; a unary answer takes as long as its stream would.
//! When the caller asks it to reason, it first "reasons" with one signed reasoning part,
//! `Reasoning about N words.` signed `echo-N`, so clients can exercise reasoning round trips;
//! reasoning tokens are the words of that part.

mod embed;

use std::{sync::atomic::AtomicU64, sync::atomic::Ordering, time::Duration};

use crate::chat::{
    ChatEvent, ChatRequest, ChatResponse, ContentPart, FinishReason, Message, Reasoning,
    ReasoningDelta, Role, ToolCall, ToolCallDelta, ToolChoice, Usage,
};

use super::{ChatStream, Provider, ProviderError};

/// The echo provider.
#[derive(Debug)]
pub struct EchoProvider {
    name: String,
    chunk_delay: Duration,
    next_id: AtomicU64,
}

/// What echo will answer to one request, worked out once for both RPCs.
struct Answer {
    reasoning: Option<Reasoning>,
    tokens: Vec<String>,
    tool_call: Option<ToolCall>,
    finish: FinishReason,
    usage: Usage,
}

impl EchoProvider {
    /// An echo provider named `name` that waits `chunk_delay` between streamed deltas.
    pub fn new(name: impl Into<String>, chunk_delay: Duration) -> Self {
        EchoProvider { name: name.into(), chunk_delay, next_id: AtomicU64::new(1) }
    }

    fn next_id(&self) -> String {
        format!("echo-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn answer(request: &ChatRequest) -> Answer {
        let last_user = request.messages.iter().rev().find(|m| m.role == Role::User);
        let mut text = last_user.map(Message::joined_text).unwrap_or_default();
        let mut finish = FinishReason::Stop;

        if let Some(cut) =
            request.generation.stop.iter().filter_map(|s| text.find(s.as_str())).min()
        {
            text.truncate(cut);
        }
        let mut tokens: Vec<String> =
            text.split_inclusive(char::is_whitespace).map(str::to_owned).collect();
        if let Some(max) = request.generation.max_tokens {
            let max = usize::try_from(max).unwrap_or(usize::MAX);
            if tokens.len() > max {
                tokens.truncate(max);
                finish = FinishReason::Length;
            }
        }

        let tool_name = match &request.tool_choice {
            Some(ToolChoice::Tool(name)) => Some(name.clone()),
            Some(ToolChoice::Required) => request.tools.first().map(|t| t.name.clone()),
            _ => None,
        };
        let answer_text: String = tokens.concat();
        let reasoning = request.generation.reasoning.map(|_| {
            let words = word_count(&answer_text);
            Reasoning {
                text: format!("Reasoning about {words} word{}.", if words == 1 { "" } else { "s" }),
                signature: Some(format!("echo-{words}")),
                redacted_data: None,
            }
        });
        let tool_call = tool_name.map(|name| ToolCall {
            id: "call_echo_0".to_owned(),
            name,
            arguments: serde_json::json!({ "text": answer_text }).to_string(),
            signature: None,
        });
        if tool_call.is_some() {
            tokens.clear();
            finish = FinishReason::ToolCalls;
        }

        let input_tokens =
            request.messages.iter().map(|m| word_count(&m.joined_text())).sum::<usize>();
        let reasoning_tokens = reasoning.as_ref().map_or(0, |r| word_count(&r.text));
        let output_tokens = match &tool_call {
            Some(call) => word_count(&call.arguments),
            None => tokens.len(),
        } + reasoning_tokens;
        Answer {
            reasoning,
            tokens,
            tool_call,
            finish,
            usage: Usage {
                input_tokens: saturate(input_tokens),
                output_tokens: saturate(output_tokens),
                reasoning_tokens: saturate(reasoning_tokens),
                estimated: false,
                ..Usage::default()
            },
        }
    }
}

fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[async_trait::async_trait]
impl Provider for EchoProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn system(&self) -> &'static str {
        crate::config::ProviderKind::Echo.gen_ai_provider()
    }

    async fn embed(
        &self,
        model: &str,
        request: &crate::embed::EmbedRequest,
    ) -> Result<crate::embed::Embeddings, ProviderError> {
        Ok(Self::embeddings(model, request))
    }

    async fn chat(
        &self,
        model: &str,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let answer = Self::answer(request);
        // A whole answer takes as long as its stream would.
        if !self.chunk_delay.is_zero() {
            let deltas = u32::try_from(answer.tokens.len().max(1)).unwrap_or(u32::MAX);
            tokio::time::sleep(self.chunk_delay.saturating_mul(deltas)).await;
        }
        let mut content: Vec<ContentPart> =
            answer.reasoning.into_iter().map(ContentPart::Reasoning).collect();
        if !answer.tokens.is_empty() {
            content.push(ContentPart::Text(answer.tokens.concat()));
        }
        Ok(ChatResponse {
            id: self.next_id(),
            provider_model: model.to_owned(),
            message: Message {
                role: Role::Assistant,
                content,
                name: None,
                tool_calls: answer.tool_call.into_iter().collect(),
                tool_call_id: None,
            },
            finish_reason: answer.finish,
            usage: answer.usage,
        })
    }

    async fn stream(
        &self,
        model: &str,
        request: &ChatRequest,
    ) -> Result<ChatStream, ProviderError> {
        let answer = Self::answer(request);
        let id = self.next_id();
        let model = model.to_owned();
        let delay = self.chunk_delay;
        let stream = async_stream::stream! {
            if let Some(r) = answer.reasoning {
                yield Ok(ChatEvent::ReasoningDelta(ReasoningDelta { text: r.text, ..ReasoningDelta::default() }));
                yield Ok(ChatEvent::ReasoningDelta(ReasoningDelta { signature: r.signature, ..ReasoningDelta::default() }));
            }
            for token in answer.tokens {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                yield Ok(ChatEvent::ContentDelta(token));
            }
            if let Some(call) = answer.tool_call {
                // Two pieces, so clients exercise assembling the arguments.
                let split = call.arguments.len() / 2;
                let split = (split..=call.arguments.len())
                    .find(|&i| call.arguments.is_char_boundary(i))
                    .unwrap_or(call.arguments.len());
                let (head, tail) = call.arguments.split_at(split);
                yield Ok(ChatEvent::ToolCallDelta(ToolCallDelta {
                    index: 0,
                    id: Some(call.id.clone()),
                    name: Some(call.name.clone()),
                    arguments: head.to_owned(),
                    signature: None,
                }));
                yield Ok(ChatEvent::ToolCallDelta(ToolCallDelta {
                    index: 0,
                    id: None,
                    name: None,
                    arguments: tail.to_owned(),
                    signature: None,
                }));
            }
            yield Ok(ChatEvent::Usage(answer.usage));
            yield Ok(ChatEvent::Finish { reason: answer.finish, id, provider_model: model });
        };
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;
    use crate::chat::{Generation, Tool};

    fn request(text: &str) -> ChatRequest {
        ChatRequest {
            model: "echo".into(),
            messages: vec![
                Message::text(Role::System, "be brief"),
                Message::text(Role::User, text),
            ],
            ..ChatRequest::default()
        }
    }

    #[tokio::test]
    async fn echoes_the_last_user_message_and_counts_words() {
        let echo = EchoProvider::new("echo", Duration::ZERO);
        let reply = echo.chat("echo-1", &request("hello there world")).await.unwrap();
        assert_eq!(reply.message.joined_text(), "hello there world");
        assert_eq!(reply.finish_reason, FinishReason::Stop);
        assert_eq!(reply.usage.input_tokens, 5);
        assert_eq!(reply.usage.output_tokens, 3);
    }

    #[tokio::test]
    async fn max_tokens_and_stop_sequences_cut_the_answer() {
        let echo = EchoProvider::new("echo", Duration::ZERO);
        let mut req = request("one two three four");
        req.generation = Generation { max_tokens: Some(2), ..Generation::default() };
        let reply = echo.chat("m", &req).await.unwrap();
        assert_eq!(reply.message.joined_text(), "one two ");
        assert_eq!(reply.finish_reason, FinishReason::Length);

        req.generation = Generation { stop: vec!["three".into()], ..Generation::default() };
        let reply = echo.chat("m", &req).await.unwrap();
        assert_eq!(reply.message.joined_text(), "one two ");
        assert_eq!(reply.finish_reason, FinishReason::Stop);
    }

    #[tokio::test]
    async fn streams_one_delta_per_word_then_usage_then_finish() {
        let echo = EchoProvider::new("echo", Duration::ZERO);
        let events: Vec<_> = echo.stream("m", &request("a b c")).await.unwrap().collect().await;
        let events: Vec<_> = events.into_iter().map(Result::unwrap).collect();
        assert_eq!(events.len(), 5);
        assert_eq!(events[0], ChatEvent::ContentDelta("a ".into()));
        assert_eq!(events[2], ChatEvent::ContentDelta("c".into()));
        assert!(matches!(events[3], ChatEvent::Usage(_)));
        assert!(matches!(events[4], ChatEvent::Finish { reason: FinishReason::Stop, .. }));
    }

    #[tokio::test]
    async fn a_required_tool_is_called_with_the_answer() {
        let echo = EchoProvider::new("echo", Duration::ZERO);
        let mut req = request("weather in Paris");
        req.tools = vec![Tool {
            name: "lookup".into(),
            description: None,
            parameters: serde_json::json!({"type": "object"}),
            strict: None,
            cache_control: None,
        }];
        req.tool_choice = Some(ToolChoice::Required);
        let reply = echo.chat("m", &req).await.unwrap();
        assert_eq!(reply.finish_reason, FinishReason::ToolCalls);
        assert_eq!(reply.message.tool_calls[0].name, "lookup");
        assert_eq!(reply.message.tool_calls[0].arguments, r#"{"text":"weather in Paris"}"#);

        let events: Vec<_> = echo.stream("m", &req).await.unwrap().collect().await;
        let args: String = events
            .iter()
            .filter_map(|e| match e {
                Ok(ChatEvent::ToolCallDelta(d)) => Some(d.arguments.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(args, r#"{"text":"weather in Paris"}"#);
    }
}
