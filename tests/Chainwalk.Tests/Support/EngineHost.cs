using Chainwalk.Compat;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Tests.Support;

/// <summary>
/// A virtual host for engine tests, set up with the same ip/sysctl commands a user types (so kernel routes
/// are derived as on a real host), with rules from iptables-save text.
/// </summary>
public static class EngineHost
{
    /// <summary>eth0 10.0.0.1/24 (MAC 02:00:00:00:00:10, default via 10.0.0.254), eth1 192.168.1.1/24, forwarding on.</summary>
    public static readonly string[] TwoInterfaces =
    [
        "ip link add eth0 type dummy",
        "ip link set eth0 address 02:00:00:00:00:10",
        "ip link set eth0 up",
        "ip addr add 10.0.0.1/24 dev eth0",
        "ip route add default via 10.0.0.254",
        "ip link add eth1 type dummy",
        "ip link set eth1 address 02:00:00:00:00:11",
        "ip link set eth1 up",
        "ip addr add 192.168.1.1/24 dev eth1",
        "sysctl -w net.ipv4.ip_forward=1",
    ];

    public static VirtualHost Create(string rulesV4 = "", string rulesV6 = "", params string[] commands)
    {
        string dir = Path.Combine(Path.GetTempPath(), "cw-engine-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(dir);
        try
        {
            var store = new HostStore(dir);
            var io = new ToolIo { In = TextReader.Null, Out = TextWriter.Null, Err = new StringWriter() };
            foreach (string c in commands.Length == 0 ? TwoInterfaces : commands)
            {
                string[] argv = c.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                int rc = argv[0] == "sysctl" ? SysctlCompat.Run(argv, store, io) : IpCompat.Run(argv, store, io);
                if (rc != 0) throw new InvalidOperationException($"{c}: {io.Err}");
            }
            VirtualHost host = store.Load();
            if (rulesV4.Length > 0) host.V4 = Rules(IpFamily.V4, rulesV4);
            if (rulesV6.Length > 0) host.V6 = Rules(IpFamily.V6, rulesV6);
            return host;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    public static Ruleset Rules(IpFamily family, string text) =>
        new RestoreReader(family, family == IpFamily.V4 ? "iptables-restore" : "ip6tables-restore")
            .Apply(new Ruleset(family), text, new RestoreOptions { Counters = true });

    /// <summary>The iptables-save -c text of a family's rules, without the comment lines.</summary>
    public static string Counters(VirtualHost host, IpFamily family = IpFamily.V4) =>
        string.Join('\n', SaveWriter.Write(host.Rules(family), counters: true).Split('\n').Where(l => !l.StartsWith('#')));

    /// <summary>A packet arriving on an interface, with the sender's MAC and the interface's own as destination.</summary>
    public static PacketInput In(string iface, byte[] bytes, double? at = null) =>
        new() { Bytes = bytes, InInterface = iface, SourceMac = 0x02_00_00_00_00_99, At = at };

    public static PacketInput Local(byte[] bytes, string? outIface = null, uint mark = 0) =>
        new() { Bytes = bytes, OutInterface = outIface, Mark = mark };

    public static byte[] Tcp(string src, string dst, ushort sport, ushort dport, TcpFlags flags = TcpFlags.Syn, byte ttl = 64) =>
        (dst.Contains(':') ? PacketBuilder.Ipv6(src, dst) : PacketBuilder.Ipv4(src, dst)).Ttl(ttl).Tcp(sport, dport, flags).Build();

    public static byte[] Udp(string src, string dst, ushort sport, ushort dport, byte ttl = 64) =>
        (dst.Contains(':') ? PacketBuilder.Ipv6(src, dst) : PacketBuilder.Ipv4(src, dst)).Ttl(ttl).Udp(sport, dport).Build();
}
