using Chainwalk.Compat;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Tests.Support;
using Shouldly;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// A host for match tests: eth0 up with 10.0.0.1/24 and 2001:db8:1::1/64, the raw table's PREROUTING chain
/// holding the given rule (save syntax) with -j DROP, and a way to see whether the one rule took the packet.
/// </summary>
internal static class MatchTestHost
{
    private static readonly Lazy<VirtualHost> Template = new(Build);

    private static VirtualHost Build()
    {
        string dir = Directory.CreateTempSubdirectory("cw-engine-").FullName;
        try
        {
            var store = new HostStore(dir);
            foreach (string line in new[]
            {
                "ip link add eth0 type veth peer name eth0p",
                "ip addr add 10.0.0.1/24 dev eth0",
                "ip link set eth0p up",
                "ip link set eth0 up",
                "ip -6 addr add 2001:db8:1::1/64 dev eth0 nodad",
            })
            {
                string[] argv = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var output = new StringWriter();
                var io = new ToolIo { In = TextReader.Null, Out = output, Err = output };
                IpCompat.Run(argv, store, io).ShouldBe(0, line + ": " + output);
            }
            return store.LoadNetwork();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>A host whose raw PREROUTING chain (policy ACCEPT) holds "-A PREROUTING <paramref name="rule"/> -j DROP".</summary>
    public static VirtualHost WithInputRule(IpFamily family, string rule)
    {
        VirtualHost t = Template.Value;
        var host = VirtualHost.CreateFresh();
        host.Links.Clear();
        host.Links.AddRange(t.Links);
        host.Addresses.Clear();
        host.Addresses.AddRange(t.Addresses);
        host.Routes.AddRange(t.Routes);
        foreach (string hidden in t.HiddenRoutes) host.HiddenRoutes.Add(hidden);
        // raw PREROUTING sees fragments one by one (INPUT sees IPv4 datagrams only after reassembly).
        string text = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING " + rule + " -j DROP\nCOMMIT\n";
        var reader = new RestoreReader(family, family == IpFamily.V4 ? "iptables-restore" : "ip6tables-restore", CorpusNames.Db);
        host.SetRules(reader.Apply(new Ruleset(family), text, new RestoreOptions()));
        return host;
    }

    /// <summary>What became of a packet received on eth0 by a host with the one-rule INPUT chain.</summary>
    public static string Fate(IpFamily family, string rule, byte[] packet, ulong? sourceMac = null)
    {
        var nf = new Netfilter(WithInputRule(family, rule));
        PacketResult r = nf.Process(new PacketInput { Bytes = packet, InInterface = "eth0", SourceMac = sourceMac });
        r.Error.ShouldBeNull();
        // A fragment the rule let through waits for the rest of its datagram: for the rule it got through.
        return string.Join(",", r.Fate.Select(f => f == "held:reassembly" ? "delivered-local" : f));
    }
}
