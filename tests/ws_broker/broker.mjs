// A websocket MQTT endpoint for mqscope's tests, on a free port of 127.0.0.1.
//
//   node broker.mjs [--path /mqtt] [--cert CERT.pem --key KEY.pem [--alpn P]]
//                   [--bridge HOST:PORT] [--require-header NAME:VALUE]
//   node broker.mjs --mode proxy [--require-header Proxy-Authorization:VALUE]
//   node broker.mjs --mode tls --bridge HOST:PORT --cert C --key K
//                   [--tls-min TLSv1.3] [--tls-max TLSv1.2]
//
// Without --bridge it is Aedes, a real MQTT 3.1.1 broker, behind a `ws`
// websocket server. With --bridge it is a websocket gateway in front of a TCP
// broker (the way nginx or websockify put Mosquitto on websockets): every
// websocket is piped to a new TCP connection, so MQTT 5 works too.
// An upgrade on another path gets HTTP 404; without the required header,
// HTTP 401. With --alpn the TLS server accepts only that ALPN protocol.
// `--mode proxy` is an HTTP CONNECT proxy instead (HTTP 407 without the
// required header); `--mode tls` a plain TLS front to the TCP broker, limited
// to the TLS versions given (Mosquitto 2.0 can only set a minimum). Prints `listening PORT` once it accepts connections.
import { createServer as createHttp } from 'node:http'
import { createServer as createHttps } from 'node:https'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import tlsNet from 'node:tls'
import { WebSocketServer, createWebSocketStream } from 'ws'
import { Aedes } from 'aedes'

const opts = { path: '/mqtt' }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i += 2) opts[argv[i].replace(/^--/, '')] = argv[i + 1]

function required (req) {
  if (!opts['require-header']) return true
  const [name, value] = opts['require-header'].split(/:(.*)/s)
  return req.headers[name.toLowerCase()] === value
}

const tls = opts.cert
  ? { cert: readFileSync(opts.cert), key: readFileSync(opts.key) }
  : null
if (tls && opts.alpn) tls.ALPNProtocols = [opts.alpn]
if (tls && opts['tls-min']) tls.minVersion = opts['tls-min']
if (tls && opts['tls-max']) tls.maxVersion = opts['tls-max']

if (opts.mode === 'tls') {
  const [host, port] = opts.bridge.split(':')
  const front = tlsNet.createServer(tls, (socket) => {
    const tcp = net.connect(Number(port), host)
    tcp.on('error', () => socket.destroy())
    socket.on('error', () => tcp.destroy())
    socket.pipe(tcp).pipe(socket)
  })
  front.listen(0, '127.0.0.1', () => console.log(`listening ${front.address().port}`))
} else {
const server = tls ? createHttps(tls) : createHttp()
server.on('request', (req, res) => { res.writeHead(404); res.end() })

if (opts.mode === 'proxy') {
  server.on('connect', (req, socket, head) => {
    if (!required(req)) return refuse(socket, '407 Proxy Authentication Required')
    const [host, port] = req.url.split(/:(?=\d+$)/)
    const upstream = net.connect(Number(port), host, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      if (head.length) upstream.write(head)
      upstream.pipe(socket).pipe(upstream)
    })
    upstream.on('error', () => refuse(socket, '502 Bad Gateway'))
    socket.on('error', () => upstream.destroy())
  })
}

const wss = new WebSocketServer({
  noServer: true,
  handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : false)
})

function refuse (socket, status) {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
}

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://localhost')
  if (url.pathname !== opts.path) return refuse(socket, '404 Not Found')
  if (!required(req)) return refuse(socket, '401 Unauthorized')
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
})

const aedes = opts.bridge || opts.mode === 'proxy' ? null : await Aedes.createBroker()

wss.on('connection', (ws, req) => {
  const stream = createWebSocketStream(ws)
  stream.on('error', () => stream.destroy())
  if (aedes) {
    aedes.handle(stream, req)
    return
  }
  const [host, port] = opts.bridge.split(':')
  const tcp = net.connect(Number(port), host)
  tcp.on('error', () => stream.destroy())
  stream.on('close', () => tcp.destroy())
  tcp.on('close', () => stream.destroy())
  stream.pipe(tcp).pipe(stream)
})

server.listen(0, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`)
})
}
