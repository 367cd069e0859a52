using System.Text;
using Chainwalk.Compat;
using Chainwalk.Extensions;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Tests.Support;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// The CLI's bulk paths work on UTF-8 bytes: iptables-restore input and the host's rules file are decoded a line at a
/// time (<see cref="RestoreReader.ApplyUtf8"/>), and the host's rules file is written as bytes
/// (<see cref="Utf8SaveWriter"/>). Each must give exactly what the text paths give: the same rules and save text,
/// the same errors at the same lines, the same bytes in the file.
/// </summary>
public class RestoreUtf8Tests
{
    private const string Head = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n";

    /// <summary>Inputs whose line splitting or decoding could differ: no final newline, CR, quotes across a line end, non-ASCII, invalid UTF-8.</summary>
    public static TheoryData<string, byte[]> Inputs() => new()
    {
        { "plain", Encoding.UTF8.GetBytes(Head + "-A FORWARD -s 1.2.3.4/24 -p tcp --dport 22 -j ACCEPT\nCOMMIT\n") },
        { "commit without final newline", Encoding.UTF8.GetBytes(Head + "-A INPUT -j DROP\nCOMMIT") },
        { "empty", [] },
        { "only newlines", "\n\n\n"u8.ToArray() },
        { "comment lines and blank lines", Encoding.UTF8.GetBytes("# x\n\n" + Head + "\n# y\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n\n") },
        { "non-ASCII comment", Encoding.UTF8.GetBytes(Head + "-A INPUT -m comment --comment \"grüße ✓ 𝄞\" -j ACCEPT\nCOMMIT\n") },
        { "non-ASCII chain name", Encoding.UTF8.GetBytes("*filter\n:ÜBER - [0:0]\n-A ÜBER -j RETURN\n-A INPUT -j ÜBER\nCOMMIT\n") },
        { "invalid UTF-8 in a comment", [.. Encoding.UTF8.GetBytes(Head + "-A INPUT -m comment --comment \"a"), 0xC3, 0x28, 0xE2, 0x82, .. Encoding.UTF8.GetBytes("b\" -j ACCEPT\nCOMMIT\n")] },
        { "truncated sequence at a line end", [.. Encoding.UTF8.GetBytes(Head + "# x"), 0xE2, 0x82, .. Encoding.UTF8.GetBytes("\n-A INPUT -j ACCEPT\nCOMMIT\n")] },
        { "carriage returns", Encoding.UTF8.GetBytes(Head + "-A INPUT -j ACCEPT\r\nCOMMIT\n") },
        { "counters", Encoding.UTF8.GetBytes("*filter\n:INPUT DROP [7:420]\n[3:180] -A INPUT -p udp --sport 53 -j ACCEPT\nCOMMIT\n") },
        { "unknown option", Encoding.UTF8.GetBytes(Head + "-A INPUT -j ACCEPT\n-A INPUT --bogus 1 -j ACCEPT\nCOMMIT\n") },
        { "missing COMMIT", Encoding.UTF8.GetBytes(Head + "-A INPUT -j ACCEPT\n") },
        { "quote open at the end of a line", Encoding.UTF8.GetBytes(Head + "-A INPUT -m comment --comment \"abc\n-A INPUT -j ACCEPT\nCOMMIT\n") },
        { "two tables", Encoding.UTF8.GetBytes(Head + "-A INPUT -j ACCEPT\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --dport 80 -j REDIRECT --to-ports 8080\nCOMMIT\n") },
    };

    private static string Outcome(Func<RestoreReader, Ruleset> apply)
    {
        var reader = new RestoreReader(IpFamily.V4, "iptables-restore");
        try
        {
            Ruleset r = apply(reader);
            return "ok\n" + SaveWriter.Write(r, counters: true) + string.Join("\n", reader.Warnings);
        }
        catch (XtablesException ex)
        {
            var err = new StringWriter();
            int rc = IptablesCompat.ReportError(ex, "iptables-restore", err, restore: true);
            return $"exit {rc}\n{err}committed:{(reader.Committed is { } c ? SaveWriter.Write(c, counters: true) : "none")}";
        }
    }

    [Theory]
    [MemberData(nameof(Inputs))]
    public void Utf8_input_gives_what_its_decoded_text_gives(string name, byte[] input)
    {
        _ = name;
        var options = new RestoreOptions { Counters = true };
        string fromText = Outcome(r => r.Apply(new Ruleset(IpFamily.V4), Encoding.UTF8.GetString(input), options));
        string fromBytes = Outcome(r => r.ApplyUtf8(new Ruleset(IpFamily.V4), input, options));
        Assert.Equal(fromText, fromBytes);
    }

    [Theory]
    [MemberData(nameof(CorpusRestoreTests.LoadableFiles), MemberType = typeof(CorpusRestoreTests))]
    public void Corpus_file_read_as_utf8_gives_the_same_rules(string rel)
    {
        Ruleset fromText = CorpusRestoreTests.Load(rel, CorpusNames.Db);
        IpFamily family = CorpusRestoreTests.FamilyOf(rel);
        string text = File.ReadAllText(Path.Combine(TestPaths.Corpus, rel));
        KernelObjects.Current = CorpusRestoreTests.PrerequisiteObjects(text, family);
        if (Path.GetFileName(rel).StartsWith("ufw-0.37-conf", StringComparison.Ordinal)) return; // needs the chains made first (CorpusRestoreTests.Load)
        var reader = new RestoreReader(family, family == IpFamily.V4 ? "iptables-restore" : "ip6tables-restore", CorpusNames.Db);
        Ruleset fromBytes = reader.ApplyUtf8(new Ruleset(family), File.ReadAllBytes(Path.Combine(TestPaths.Corpus, rel)), new RestoreOptions());
        Assert.Equal(SaveWriter.Write(fromText, counters: true, names: CorpusNames.Db), SaveWriter.Write(fromBytes, counters: true, names: CorpusNames.Db));
    }

    [Theory]
    [MemberData(nameof(CorpusRestoreTests.LoadableFiles), MemberType = typeof(CorpusRestoreTests))]
    public void Byte_writer_writes_the_save_text_byte_for_byte(string rel)
    {
        Ruleset rules = CorpusRestoreTests.Load(rel, CorpusNames.Db);
        foreach (bool counters in new[] { true, false })
        {
            var sb = new StringBuilder();
            foreach (Table t in rules.Tables) SaveWriter.WriteTable(sb, t, counters, CorpusNames.Db);
            var stream = new MemoryStream();
            var writer = new Utf8SaveWriter(stream, CorpusNames.Db);
            foreach (Table t in rules.Tables) writer.WriteTable(t, counters);
            writer.Flush();
            Assert.Equal(Encoding.UTF8.GetBytes(sb.ToString()), stream.ToArray());
        }
    }

    /// <summary>Rules whose save form takes every branch of the byte writer: inversions, masks that are no prefix, IPv6, -f, goto, extension targets, non-ASCII and lone surrogates.</summary>
    public static TheoryData<IpFamily, string> OddRules() => new()
    {
        { IpFamily.V4, "*filter\n:X - [0:0]\n-A FORWARD ! -s 10.0.0.0/8 ! -d 1.2.3.4/255.0.255.0 ! -i eth+ -o + ! -p udp ! -f -j X\n-A INPUT -i + -j ACCEPT\n-A INPUT ! -i + -g X\n-A INPUT -p 0 -j DROP\n-A INPUT -p 200 -j DROP\nCOMMIT\n" },
        { IpFamily.V4, "*filter\n-A INPUT -s 0.0.0.0/0 -d 255.255.255.255/32 -j REJECT --reject-with tcp-reset -p tcp\n-A INPUT -m comment --comment \"x\\\"y 𝄞 é\" -m mark ! --mark 0x10/0xff -j LOG --log-prefix \"ü \"\nCOMMIT\n" },
        { IpFamily.V6, "*filter\n-A INPUT -s 2001:db8::/32 ! -d ::1/128 -p ipv6-icmp -j ACCEPT\n-A INPUT -s 2001:db8::1/ffff:0:ffff:: -j DROP\nCOMMIT\n" },
        { IpFamily.V4, "*nat\n:PREROUTING ACCEPT [1:2]\n[18446744073709551615:12345678901234567890] -A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.1:8080\nCOMMIT\n" },
    };

    [Theory]
    [MemberData(nameof(OddRules))]
    public void Byte_writer_matches_the_text_writer_on_odd_rules(IpFamily family, string text)
    {
        var reader = new RestoreReader(family, family == IpFamily.V4 ? "iptables-restore" : "ip6tables-restore");
        Ruleset rules = reader.Apply(new Ruleset(family), text, new RestoreOptions { Counters = true });
        // A lone surrogate (only a library user can put one in a name) is encoded as the StringBuilder path encodes it.
        rules.Tables.First().Chains.First().Rules.Add(new Rule { Family = family, Target = TargetUse.Jump("A\uD800B", isGoto: false) });
        var sb = new StringBuilder();
        foreach (Table t in rules.Tables) SaveWriter.WriteTable(sb, t, counters: true, NameDb.System);
        var stream = new MemoryStream();
        var writer = new Utf8SaveWriter(stream, NameDb.System);
        foreach (Table t in rules.Tables) writer.WriteTable(t, counters: true);
        writer.Flush();
        Assert.Equal(new UTF8Encoding(false).GetBytes(sb.ToString()), stream.ToArray());
    }

    [Theory]
    [InlineData(new byte[] { 0xEF, 0xBB, 0xBF, (byte)'*' }, 3)]
    [InlineData(new byte[] { (byte)'*', (byte)'f' }, 0)]
    [InlineData(new byte[] { }, 0)]
    [InlineData(new byte[] { 0xFF, 0xFE, (byte)'*', 0 }, -1)]
    [InlineData(new byte[] { 0xFE, 0xFF, 0, (byte)'*' }, -1)]
    [InlineData(new byte[] { 0, 0, 0xFE, 0xFF }, -1)]
    public void Utf8_body_skips_a_utf8_byte_order_mark_and_refuses_others(byte[] file, int expected) =>
        Assert.Equal(expected, RestoreReader.Utf8Body(file));

    /// <summary>A restore from a file (read as bytes) stores what the same restore from standard input (text) stores, and that is iptables-save -c text.</summary>
    [Theory]
    [InlineData("with byte order mark", true)]
    [InlineData("without", false)]
    public void Restore_from_a_file_stores_the_same_state_as_from_stdin(string name, bool bom)
    {
        _ = name;
        string input = Head + "-A INPUT -s 10.1.2.3/16 -p tcp -m tcp --sport 1:2 -m comment --comment \"é\" -j ACCEPT\n-A FORWARD -p 47 -j DROP\nCOMMIT\n";
        string file = Path.Combine(Directory.CreateTempSubdirectory("cw-u8-").FullName, "in.rules");
        File.WriteAllBytes(file, [.. (bom ? new byte[] { 0xEF, 0xBB, 0xBF } : []), .. Encoding.UTF8.GetBytes(input)]);
        string StoreAfter(string[] argv, string stdin)
        {
            var store = new HostStore(Directory.CreateTempSubdirectory("cw-u8-host-").FullName);
            var io = new ToolIo { In = new StringReader(stdin), Out = new StringWriter(), Err = new StringWriter() };
            Assert.Equal(0, IptablesCompat.Restore(IpFamily.V4, argv, store, io));
            string stored = File.ReadAllText(Path.Combine(store.Directory, HostStore.RulesFile(IpFamily.V4)));
            Assert.Equal(SaveWriter.Write(store.LoadRules(IpFamily.V4), counters: true), stored);
            return stored;
        }
        Assert.Equal(StoreAfter(["iptables-restore"], input), StoreAfter(["iptables-restore", file], ""));
    }
}
