"""`python -m agent`: serve the agent on PORT (default 8080), on all interfaces as AgentCore expects."""
import os

import uvicorn

if __name__ == "__main__":
    uvicorn.run("agent.app:app", host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", "8080")))
