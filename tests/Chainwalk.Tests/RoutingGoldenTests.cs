using System.Globalization;
using System.Text;
using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Routing;
using Chainwalk.Tests.Support;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// <see cref="RouteLookup"/> against the real kernel (Linux 6.18, iproute2 6.1): each
/// golden/routing/NAME.cmds builds a host with ip and sysctl and asks "? ip route get …" questions;
/// NAME.out is what the kernel answered in a namespace built the same way (tests/tools/record-route-get.sh).
/// The test builds the same host through IpCompat/SysctlCompat, answers each question with
/// RouteLookup and prints the answer as ip would.
/// </summary>
public class RoutingGoldenTests
{
    public static TheoryData<string> Scenarios()
    {
        var data = new TheoryData<string>();
        foreach (string f in Directory.EnumerateFiles(Path.Combine(TestPaths.Golden, "routing"), "*.cmds").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileNameWithoutExtension(f));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void Answers_what_the_kernel_answered(string name)
    {
        string dir = Path.Combine(TestPaths.Golden, "routing");
        string expected = File.ReadAllText(Path.Combine(dir, name + ".out"));
        string actual = Run(File.ReadAllLines(Path.Combine(dir, name + ".cmds")));
        if (actual != expected) File.WriteAllText(Path.Combine(Path.GetTempPath(), "routing-" + name + ".actual"), actual);
        actual.ShouldBe(expected);
    }

    private static string Run(IEnumerable<string> lines)
    {
        string hostDir = Directory.CreateTempSubdirectory("cw-route-").FullName;
        try
        {
            var store = new HostStore(hostDir);
            var sb = new StringBuilder();
            foreach (string line in lines)
            {
                if (line.Length == 0 || line[0] == '#') continue;
                if (line.StartsWith("? ", StringComparison.Ordinal))
                {
                    string q = line[2..];
                    sb.Append("$ ").Append(q).Append('\n');
                    string[] words = q.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    (string text, int rc) = words[0] == "addrtype" ? AddressTypes(store.LoadNetwork(), words) : Answer(store.LoadNetwork(), words);
                    sb.Append(text).Append("[rc=").Append(rc.ToString(CultureInfo.InvariantCulture)).Append("]\n");
                    continue;
                }
                string[] argv = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var output = new StringWriter();
                var io = new ToolIo { In = TextReader.Null, Out = output, Err = output };
                int code = argv[0] == "sysctl" ? SysctlCompat.Run(argv, store, io) : IpCompat.Run(argv, store, io);
                code.ShouldBe(0, $"setup: {line}: {output}");
            }
            return sb.ToString();
        }
        finally
        {
            Directory.Delete(hostDir, recursive: true);
        }
    }

    private static UInt128 Addr(string text, out IpFamily family)
    {
        family = text.Contains(':', StringComparison.Ordinal) ? IpFamily.V6 : IpFamily.V4;
        IpNet.TryParseStrict(text, family, out UInt128 a).ShouldBeTrue(text);
        return a;
    }

    /// <summary>"addrtype [-6] ADDR": the xt_addrtype destination types, as the recorder prints them.</summary>
    private static (string Text, int Rc) AddressTypes(VirtualHost host, string[] a)
    {
        string text = a[^1];
        UInt128 addr = Addr(text, out IpFamily f);
        if (!RouteLookup.Output(host, new RouteQuery(f, addr)).Ok) return ("unsent\n", 0);
        if (f == IpFamily.V4) return (RouteLookup.AddressType4(host, addr).ToString().ToUpperInvariant() + " \n", 0);
        IReadOnlySet<RouteType> types = RouteLookup.AddressTypes6(host, addr);
        RouteType[] order = [RouteType.Unspec, RouteType.Unicast, RouteType.Local, RouteType.Anycast, RouteType.Multicast, RouteType.Unreachable];
        return (string.Concat(order.Where(types.Contains).Select(t => t.ToString().ToUpperInvariant() + " ")) + "\n", 0);
    }

    /// <summary>Answers "ip [-6] route get DST [from SRC] [iif DEV] [oif DEV] [mark N]" and prints it as ip 6.1 does.</summary>
    private static (string Text, int Rc) Answer(VirtualHost host, string[] a)
    {
        int i = a[1] == "-6" ? 4 : 3;
        string dstText = a[i];
        UInt128 dst = Addr(dstText, out IpFamily f);
        string? from = null, iif = null, oif = null;
        uint mark = 0;
        for (int k = i + 1; k < a.Length; k += 2)
        {
            switch (a[k])
            {
                case "from": from = a[k + 1]; break;
                case "iif": iif = a[k + 1]; break;
                case "oif": oif = a[k + 1]; break;
                case "mark": mark = uint.Parse(a[k + 1], CultureInfo.InvariantCulture); break;
                default: throw new InvalidOperationException(a[k]);
            }
        }
        return IpRouteGet.Answer(host, f, dst, dstText, from, from is null ? null : Addr(from, out _), iif, oif, mark);
    }
}
