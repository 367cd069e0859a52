using Chainwalk.Wire;

namespace Chainwalk.Bench;

/// <summary>
/// A capture for the replay figure (bench/replay_bench.sh): TCP connections to a Lab 1 server (10.9.0.1, ports 22
/// and 80, examples/lab1-server.rules) from clients on its link, raw IP, both directions as tcpdump on the server's
/// interface would see them: the handshake, then rounds of 100 bytes of client data and the server's answer
/// (valid sequence numbers and checksums, so conntrack keeps every connection ESTABLISHED), a FIN exchange at the
/// end; some connections go to port 443 and are dropped. Connections are interleaved, a thousand at a time.
/// </summary>
public static class ReplayCapture
{
    public static long Write(string path, int packets)
    {
        const uint server = 0x0A090001; // 10.9.0.1
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        using var writer = new CaptureWriter(file, CaptureFileFormat.Pcap, LinkType.Raw);
        var rnd = new Random(7);
        byte[] payload = new byte[100];
        rnd.NextBytes(payload);
        long written = 0;
        long ns = 0;
        const int concurrent = 1000;
        const int rounds = 23; // 3 handshake + 2 × 23 + 4 teardown = 53 packets per connection
        int flow = 0;
        while (written < packets)
        {
            var flows = new (uint Client, ushort Port, ushort ServerPort, uint C, uint S)[concurrent];
            for (int i = 0; i < concurrent; i++, flow++)
            {
                uint client = 0x0A090000u + 2 + (uint)(flow % 250);
                ushort sport = (ushort)(10000 + (flow / 250) % 50000);
                ushort dport = (flow % 10) switch { 9 => (ushort)443, < 5 => (ushort)22, _ => (ushort)80 };
                flows[i] = (client, sport, dport, (uint)rnd.Next(), (uint)rnd.Next());
            }
            void Emit(byte[] ip)
            {
                ns += 2_000;
                writer.Write(new CaptureTimestamp(1_700_000_000 + ns / 1_000_000_000, (uint)(ns % 1_000_000_000)), ip);
                written++;
            }
            // Handshakes.
            for (int i = 0; i < concurrent && written < packets; i++)
            {
                var f = flows[i];
                Emit(PacketBuilder.Ipv4(f.Client, server).Tcp(f.Port, f.ServerPort, TcpFlags.Syn, seq: f.C).Build());
                if (f.ServerPort == 443) continue; // dropped by the policy: no answer
                Emit(PacketBuilder.Ipv4(server, f.Client).Tcp(f.ServerPort, f.Port, TcpFlags.Syn | TcpFlags.Ack, seq: f.S, ack: f.C + 1).Build());
                Emit(PacketBuilder.Ipv4(f.Client, server).Tcp(f.Port, f.ServerPort, TcpFlags.Ack, seq: f.C + 1, ack: f.S + 1).Build());
                flows[i].C = f.C + 1;
                flows[i].S = f.S + 1;
            }
            for (int r = 0; r < rounds && written < packets; r++)
            {
                for (int i = 0; i < concurrent && written < packets; i++)
                {
                    var f = flows[i];
                    if (f.ServerPort == 443) continue;
                    Emit(PacketBuilder.Ipv4(f.Client, server).Tcp(f.Port, f.ServerPort, TcpFlags.Psh | TcpFlags.Ack, seq: f.C, ack: f.S).Payload(payload).Build());
                    Emit(PacketBuilder.Ipv4(server, f.Client).Tcp(f.ServerPort, f.Port, TcpFlags.Psh | TcpFlags.Ack, seq: f.S, ack: f.C + 100).Payload(payload).Build());
                    flows[i].C = f.C + 100;
                    flows[i].S = f.S + 100;
                }
            }
            for (int i = 0; i < concurrent && written < packets; i++)
            {
                var f = flows[i];
                if (f.ServerPort == 443) continue;
                Emit(PacketBuilder.Ipv4(f.Client, server).Tcp(f.Port, f.ServerPort, TcpFlags.Fin | TcpFlags.Ack, seq: f.C, ack: f.S).Build());
                Emit(PacketBuilder.Ipv4(server, f.Client).Tcp(f.ServerPort, f.Port, TcpFlags.Ack, seq: f.S, ack: f.C + 1).Build());
                Emit(PacketBuilder.Ipv4(server, f.Client).Tcp(f.ServerPort, f.Port, TcpFlags.Fin | TcpFlags.Ack, seq: f.S, ack: f.C + 1).Build());
                Emit(PacketBuilder.Ipv4(f.Client, server).Tcp(f.Port, f.ServerPort, TcpFlags.Ack, seq: f.C + 1, ack: f.S + 1).Build());
            }
        }
        return written;
    }
}
