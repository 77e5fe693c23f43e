"""LLM providers: mock, OpenAI-compatible (openai, vllm, ollama), Claude, Gemini."""
