// memq plugin for OpenCode: written by `memq install --assistant opencode`, removed by `memq uninstall --assistant opencode`.
//
// Every event memq remembers is handed to `memq hook --assistant opencode` (JSON on stdin), the
// very command Claude Code's hooks run, so OpenCode's events get all it guarantees: a direct
// durable write when the daemon is down, <private> and secret redaction, the spool. memq maps
// OpenCode's objects in Python (memq/assistants/opencode.py); this file only passes them on.
//
// It never blocks OpenCode for long and never throws into it: deliveries run one after another
// in the background (in the order OpenCode reported them); only the system prompt of a session's
// first request waits, at most WAIT_MS, for the memory memq answers at session start.

import { spawn } from "node:child_process"

const MEMQ_HOOK = "__MEMQ_HOOK_COMMAND__"
const WAIT_MS = 3000 // the longest OpenCode waits for memq, where it waits at all
const HOOK_TIMEOUT_MS = 30000 // a hook still running after this is stopped
const DRAIN_MS = 10000 // how long OpenCode's shutdown waits for deliveries still queued
const MAX_TEXT = 4000 // of the turn's last reply kept for its summary

// Run the hook with one payload on stdin; resolve with what it printed ("" on any failure).
function runHook(payload) {
  return new Promise((resolve) => {
    let out = ""
    let done = false
    const finish = () => {
      if (!done) {
        done = true
        resolve(out)
      }
    }
    try {
      const child = spawn(MEMQ_HOOK, { shell: true, stdio: ["pipe", "pipe", "ignore"] })
      const timer = setTimeout(() => child.kill("SIGKILL"), HOOK_TIMEOUT_MS)
      child.stdout.on("data", (chunk) => {
        out += chunk.toString("utf8")
      })
      child.on("error", () => {
        clearTimeout(timer)
        finish()
      })
      child.on("close", () => {
        clearTimeout(timer)
        finish()
      })
      child.stdin.on("error", () => {}) // a hook that exits early closes its stdin
      child.stdin.end(JSON.stringify(payload))
    } catch {
      finish()
    }
  })
}

// A promise's value, or undefined once `ms` have passed.
function within(promise, ms) {
  if (!promise) return Promise.resolve(undefined)
  return Promise.race([promise, new Promise((resolve) => setTimeout(resolve, ms).unref?.())])
}

// Metadata of a tool's result without its bulky parts (whole files before and after an edit).
function smallMetadata(metadata) {
  const kept = {}
  if (!metadata || typeof metadata !== "object") return kept
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value === "number" || typeof value === "boolean") kept[key] = value
    else if (typeof value === "string" && value.length <= 200) kept[key] = value
  }
  return kept
}

function textParts(parts) {
  return (Array.isArray(parts) ? parts : []).filter(
    (part) => part && part.type === "text" && !part.synthetic && !part.ignored,
  )
}

export const MemqPlugin = async ({ directory, worktree }) => {
  let chain = Promise.resolve()
  const context = new Map() // session id -> memq's memory for it (SessionStart's answer)
  const recall = new Map() // session id -> memq's recall for its latest prompt
  const waiting = new Map() // session id -> the delivery whose answer the prompt waits for
  const lastPrompt = new Map() // session id -> the latest prompt's text
  const lastReply = new Map() // session id -> the latest assistant text of the turn
  const userMessages = new Set() // ids of the user's messages (their text is no reply)

  // Queue one delivery after the others; resolve with the hook's answer. Never rejects.
  const send = (payload) => {
    const delivery = chain.then(() => runHook({ ...payload, directory, worktree }))
    chain = delivery.catch(() => "")
    return chain
  }

  const forget = (id) => {
    for (const map of [context, recall, waiting, lastPrompt, lastReply]) map.delete(id)
  }

  return {
    event: async ({ event }) => {
      try {
        const properties = event.properties || {}
        switch (event.type) {
          case "session.created": {
            const id = properties.info && properties.info.id
            const answer = send({ type: event.type, id: event.id, properties })
            if (id) {
              waiting.set(
                id,
                answer.then((text) => {
                  if (text) context.set(id, text)
                }),
              )
            }
            break
          }
          case "session.idle": {
            const id = properties.sessionID
            send({
              type: event.type,
              id: event.id,
              properties,
              last_user_prompt: lastPrompt.get(id),
              last_assistant_message: lastReply.get(id),
            })
            lastReply.delete(id)
            break
          }
          case "session.deleted": {
            send({ type: event.type, id: event.id, properties })
            if (properties.info) forget(properties.info.id)
            break
          }
          case "message.updated": {
            const info = properties.info
            if (info && info.role === "user") userMessages.add(info.id)
            break
          }
          case "message.part.updated": {
            const part = properties.part
            if (!part) break
            if (part.type === "text" && !part.synthetic && !userMessages.has(part.messageID)) {
              lastReply.set(part.sessionID, String(part.text || "").slice(0, MAX_TEXT))
            } else if (part.type === "tool" && part.state && part.state.status === "error") {
              send({ type: event.type, id: event.id, properties: { part } })
            }
            break
          }
        }
      } catch {
        // memq must never break OpenCode
      }
    },

    "chat.message": async (input, output) => {
      try {
        const parts = textParts(output.parts)
        if (output.message && output.message.id) userMessages.add(output.message.id)
        lastPrompt.set(input.sessionID, parts.map((part) => part.text).join("\n"))
        const answer = send({ type: "chat.message", input, output: { message: output.message, parts } })
        waiting.set(
          input.sessionID,
          Promise.all([waiting.get(input.sessionID), answer]).then(([, text]) => {
            if (text) recall.set(input.sessionID, text)
            else recall.delete(input.sessionID)
          }),
        )
      } catch {
        // memq must never break OpenCode
      }
    },

    "tool.execute.after": async (input, output) => {
      try {
        send({
          type: "tool.execute.after",
          input,
          output: {
            title: output && output.title,
            output: output && output.output,
            metadata: smallMetadata(output && output.metadata),
          },
        })
      } catch {
        // memq must never break OpenCode
      }
    },

    "experimental.chat.system.transform": async (input, output) => {
      try {
        const id = input && input.sessionID
        if (!id) return
        await within(waiting.get(id), WAIT_MS)
        for (const text of [context.get(id), recall.get(id)]) {
          if (text) output.system.push(text)
        }
      } catch {
        // memq must never break OpenCode
      }
    },

    // OpenCode shutting down: let the deliveries still queued finish, for a while.
    dispose: async () => {
      try {
        await within(chain, DRAIN_MS)
      } catch {
        // memq must never break OpenCode
      }
    },
  }
}
