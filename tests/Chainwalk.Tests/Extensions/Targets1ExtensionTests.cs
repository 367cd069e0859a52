using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;
using Shouldly;
using Chainwalk.Tests.Support;
using Xunit;

namespace Chainwalk.Tests.Extensions;

/// <summary>
/// The first group of target extensions (REJECT, LOG, NFLOG, MARK, CONNMARK, CONNSECMARK, SECMARK, CT,
/// NOTRACK, TRACE, AUDIT, CHECKSUM, CLASSIFY, NFQUEUE, IDLETIMER, LED, RATEEST): every expected value was
/// produced by the real iptables 1.8.9 (nf_tables) in a private network namespace.
/// </summary>
public sealed class Targets1ExtensionTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cw-targets1-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private (int Rc, string Out, string Err) Run(int family, params string[] args)
    {
        IpFamily fam = family == 4 ? IpFamily.V4 : IpFamily.V6;
        return CompatRun.Iptables(fam, new HostStore(_dir), args);
    }

    /// <summary>Splits a rule as a shell would (double quotes group, backslash escapes inside them).</summary>
    private static string[] Split(string text)
    {
        var list = new List<string>();
        var cur = new System.Text.StringBuilder();
        bool inWord = false, quoted = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '"') quoted = false;
                else if (c == '\\' && i + 1 < text.Length && text[i + 1] is '"' or '\\') cur.Append(text[++i]);
                else cur.Append(c);
            }
            else if (c == '"')
            {
                quoted = true;
                inWord = true;
            }
            else if (c == ' ')
            {
                if (inWord) list.Add(cur.ToString());
                cur.Clear();
                inWord = false;
            }
            else
            {
                cur.Append(c);
                inWord = true;
            }
        }
        if (inWord) list.Add(cur.ToString());
        return [.. list];
    }

    private static string LastLine(string text) => text.TrimEnd('\n').Split('\n')[^1];

    [Theory]
    [InlineData(4, "filter", "INPUT", "-j LOG", "-A INPUT -j LOG", "LOG        0    --  0.0.0.0/0            0.0.0.0/0            LOG flags 0 level 4", "LOG        all  --  anywhere             anywhere             LOG level warn")]
    [InlineData(4, "filter", "INPUT", "-j LOG --log-prefix \"test: \" --log-level alert", "-A INPUT -j LOG --log-prefix \"test: \" --log-level 1", "LOG        0    --  0.0.0.0/0            0.0.0.0/0            LOG flags 0 level 1 prefix \"test: \"", "LOG        all  --  anywhere             anywhere             LOG level alert prefix \"test: \"")]
    [InlineData(4, "filter", "INPUT", "-j LOG --log-prefix \"a'b\" --log-level 7 --log-uid --log-macdecode --log-ip-options --log-tcp-options --log-tcp-sequence", "-A INPUT -j LOG --log-prefix \"a\\'b\" --log-level 7 --log-tcp-sequence --log-tcp-options --log-ip-options --log-uid --log-macdecode", "LOG        0    --  0.0.0.0/0            0.0.0.0/0            LOG flags 47 level 7 prefix \"a'b\"", "LOG        all  --  anywhere             anywhere             LOG level debug tcp-sequence tcp-options ip-options uid macdecode prefix \"a'b\"")]
    [InlineData(4, "filter", "INPUT", "-j LOG --log-prefix 0123456789012345678901234567890", "-A INPUT -j LOG --log-prefix 01234567890123456789012345678", "LOG        0    --  0.0.0.0/0            0.0.0.0/0            LOG flags 0 level 4 prefix \"01234567890123456789012345678\"", "LOG        all  --  anywhere             anywhere             LOG level warn prefix \"01234567890123456789012345678\"")]
    [InlineData(6, "filter", "OUTPUT", "-j LOG --log-level emerg --log-tcp-options", "-A OUTPUT -j LOG --log-level 0 --log-tcp-options", "LOG        0    --  ::/0                 ::/0                 LOG flags 2 level 0", "LOG        all  --  anywhere             anywhere             LOG level emerg tcp-options")]
    [InlineData(4, "filter", "INPUT", "-j NFLOG --nflog-group 3 --nflog-prefix \"a b\" --nflog-size 100 --nflog-threshold 5", "-A INPUT -j NFLOG --nflog-prefix \"a b\" --nflog-group 3 --nflog-size 100 --nflog-threshold 5", "NFLOG      0    --  0.0.0.0/0            0.0.0.0/0            nflog-prefix \"a b\" nflog-group 3 nflog-size 100 nflog-threshold 5", "NFLOG      all  --  anywhere             anywhere             nflog-prefix \"a b\" nflog-group 3 nflog-size 100 nflog-threshold 5")]
    [InlineData(4, "filter", "INPUT", "-j NFLOG --nflog-range 5", "-A INPUT -j NFLOG", "NFLOG      0    --  0.0.0.0/0            0.0.0.0/0           ", "NFLOG      all  --  anywhere             anywhere            ")]
    [InlineData(6, "filter", "INPUT", "-j NFLOG --nflog-threshold 0", "-A INPUT -j NFLOG", "NFLOG      0    --  ::/0                 ::/0                ", "NFLOG      all  --  anywhere             anywhere            ")]
    [InlineData(4, "filter", "INPUT", "-j REJECT", "-A INPUT -j REJECT --reject-with icmp-port-unreachable", "REJECT     0    --  0.0.0.0/0            0.0.0.0/0            reject-with icmp-port-unreachable", "REJECT     all  --  anywhere             anywhere             reject-with icmp-port-unreachable")]
    [InlineData(4, "filter", "INPUT", "-p tcp -j REJECT --reject-with tcp-rst", "-A INPUT -p tcp -j REJECT --reject-with tcp-reset", "REJECT     6    --  0.0.0.0/0            0.0.0.0/0            reject-with tcp-reset", "REJECT     tcp  --  anywhere             anywhere             reject-with tcp-reset")]
    [InlineData(4, "filter", "INPUT", "-j REJECT --reject-with ICMP-HOST", "-A INPUT -j REJECT --reject-with icmp-host-unreachable", "REJECT     0    --  0.0.0.0/0            0.0.0.0/0            reject-with icmp-host-unreachable", "REJECT     all  --  anywhere             anywhere             reject-with icmp-host-unreachable")]
    [InlineData(4, "filter", "INPUT", "-j REJECT --reject-with admin", "-A INPUT -j REJECT --reject-with icmp-admin-prohibited", "REJECT     0    --  0.0.0.0/0            0.0.0.0/0            reject-with icmp-admin-prohibited", "REJECT     all  --  anywhere             anywhere             reject-with icmp-admin-prohibited")]
    [InlineData(6, "filter", "FORWARD", "-j REJECT", "-A FORWARD -j REJECT --reject-with icmp6-port-unreachable", "REJECT     0    --  ::/0                 ::/0                 reject-with icmp6-port-unreachable", "REJECT     all  --  anywhere             anywhere             reject-with icmp6-port-unreachable")]
    [InlineData(6, "filter", "INPUT", "-j REJECT --reject-with adm-prohibited", "-A INPUT -j REJECT --reject-with icmp6-adm-prohibited", "REJECT     0    --  ::/0                 ::/0                 reject-with icmp6-adm-prohibited", "REJECT     all  --  anywhere             anywhere             reject-with icmp6-adm-prohibited")]
    [InlineData(6, "filter", "INPUT", "-p tcp -j REJECT --reject-with tcp-reset", "-A INPUT -p tcp -j REJECT --reject-with tcp-reset", "REJECT     6    --  ::/0                 ::/0                 reject-with tcp-reset", "REJECT     tcp  --  anywhere             anywhere             reject-with tcp-reset")]
    [InlineData(4, "filter", "INPUT", "-j MARK --set-mark 5/0xff", "-A INPUT -j MARK --set-xmark 0x5/0xff", "MARK       0    --  0.0.0.0/0            0.0.0.0/0            MARK xset 0x5/0xff", "MARK       all  --  anywhere             anywhere             MARK xset 0x5/0xff")]
    [InlineData(4, "filter", "INPUT", "-j MARK --and-mark 0xf0", "-A INPUT -j MARK --set-xmark 0x0/0xffffff0f", "MARK       0    --  0.0.0.0/0            0.0.0.0/0            MARK and 0xf0", "MARK       all  --  anywhere             anywhere             MARK and 0xf0")]
    [InlineData(4, "filter", "INPUT", "-j MARK --or-mark 3", "-A INPUT -j MARK --set-xmark 0x3/0x3", "MARK       0    --  0.0.0.0/0            0.0.0.0/0            MARK or 0x3", "MARK       all  --  anywhere             anywhere             MARK or 0x3")]
    [InlineData(4, "filter", "INPUT", "-j MARK --xor-mark 3", "-A INPUT -j MARK --set-xmark 0x3/0x0", "MARK       0    --  0.0.0.0/0            0.0.0.0/0            MARK xor 0x3", "MARK       all  --  anywhere             anywhere             MARK xor 0x3")]
    [InlineData(4, "filter", "INPUT", "-j MARK --set-xmark 3/0xf", "-A INPUT -j MARK --set-xmark 0x3/0xf", "MARK       0    --  0.0.0.0/0            0.0.0.0/0            MARK xset 0x3/0xf", "MARK       all  --  anywhere             anywhere             MARK xset 0x3/0xf")]
    [InlineData(6, "mangle", "PREROUTING", "-j MARK --set-mark 0x10", "-A PREROUTING -j MARK --set-xmark 0x10/0xffffffff", "MARK       0    --  ::/0                 ::/0                 MARK set 0x10", "MARK       all  --  anywhere             anywhere             MARK set 0x10")]
    [InlineData(4, "mangle", "PREROUTING", "-j CONNMARK --restore-mark", "-A PREROUTING -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff", "CONNMARK   0    --  0.0.0.0/0            0.0.0.0/0            CONNMARK restore", "CONNMARK   all  --  anywhere             anywhere             CONNMARK restore")]
    [InlineData(4, "mangle", "PREROUTING", "-j CONNMARK --save-mark --mask 0xff", "-A PREROUTING -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff", "CONNMARK   0    --  0.0.0.0/0            0.0.0.0/0            CONNMARK save mask 0xff", "CONNMARK   all  --  anywhere             anywhere             CONNMARK save mask 0xff")]
    [InlineData(4, "mangle", "PREROUTING", "-j CONNMARK --restore-mark --ctmask 0xff", "-A PREROUTING -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xff", "CONNMARK   0    --  0.0.0.0/0            0.0.0.0/0            CONNMARK restore ctmask 0xff nfmask ~0xffffffff", "CONNMARK   all  --  anywhere             anywhere             CONNMARK restore ctmask 0xff nfmask ~0xffffffff")]
    [InlineData(4, "mangle", "PREROUTING", "-j CONNMARK --save-mark --nfmask 0xf --ctmask 0xff", "-A PREROUTING -j CONNMARK --save-mark --nfmask 0xf --ctmask 0xff", "CONNMARK   0    --  0.0.0.0/0            0.0.0.0/0            CONNMARK save nfmask 0xf ctmask ~0xff", "CONNMARK   all  --  anywhere             anywhere             CONNMARK save nfmask 0xf ctmask ~0xff")]
    [InlineData(4, "mangle", "PREROUTING", "-j CONNMARK --restore-mark --right-shift-mark 3 --mask 0xf0", "-A PREROUTING -j CONNMARK --restore-mark --nfmask 0xf0 --ctmask 0xf0 --right-shift-mark 3", "CONNMARK   0    --  0.0.0.0/0            0.0.0.0/0            CONNMARK restore mask 0xf0 right-shift-mark 3", "CONNMARK   all  --  anywhere             anywhere             CONNMARK restore mask 0xf0 right-shift-mark 3")]
    [InlineData(4, "mangle", "PREROUTING", "-j CONNMARK --set-mark 1 --left-shift-mark 3", "-A PREROUTING -j CONNMARK --set-xmark 0x1/0xffffffff --left-shift-mark 3", "CONNMARK   0    --  0.0.0.0/0            0.0.0.0/0            CONNMARK set 0x1 left-shift-mark 3", "CONNMARK   all  --  anywhere             anywhere             CONNMARK set 0x1 left-shift-mark 3")]
    [InlineData(4, "mangle", "PREROUTING", "-j CONNMARK --and-mark 5", "-A PREROUTING -j CONNMARK --set-xmark 0x0/0xfffffffa", "CONNMARK   0    --  0.0.0.0/0            0.0.0.0/0            CONNMARK and 0x5", "CONNMARK   all  --  anywhere             anywhere             CONNMARK and 0x5")]
    [InlineData(6, "filter", "INPUT", "-j CONNMARK --xor-mark 5", "-A INPUT -j CONNMARK --set-xmark 0x5/0x0", "CONNMARK   0    --  ::/0                 ::/0                 CONNMARK xor 0x5", "CONNMARK   all  --  anywhere             anywhere             CONNMARK xor 0x5")]
    [InlineData(4, "mangle", "INPUT", "-j CONNSECMARK --save", "-A INPUT -j CONNSECMARK --save", "CONNSECMARK  0    --  0.0.0.0/0            0.0.0.0/0            CONNSECMARK save", "CONNSECMARK  all  --  anywhere             anywhere             CONNSECMARK save")]
    [InlineData(4, "security", "OUTPUT", "-j CONNSECMARK --restore", "-A OUTPUT -j CONNSECMARK --restore", "CONNSECMARK  0    --  0.0.0.0/0            0.0.0.0/0            CONNSECMARK restore", "CONNSECMARK  all  --  anywhere             anywhere             CONNSECMARK restore")]
    [InlineData(4, "raw", "PREROUTING", "-j CT --notrack", "-A PREROUTING -j CT --notrack", "CT         0    --  0.0.0.0/0            0.0.0.0/0            CT notrack", "CT         all  --  anywhere             anywhere             CT notrack")]
    [InlineData(4, "raw", "PREROUTING", "-j CT", "-A PREROUTING -j CT", "CT         0    --  0.0.0.0/0            0.0.0.0/0            CT", "CT         all  --  anywhere             anywhere             CT")]
    [InlineData(4, "raw", "PREROUTING", "-j CT --zone mark", "-A PREROUTING -j CT --zone mark", "CT         0    --  0.0.0.0/0            0.0.0.0/0            CT zone mark", "CT         all  --  anywhere             anywhere             CT zone mark")]
    [InlineData(4, "raw", "PREROUTING", "-j CT --zone 5 --zone-orig 6", "-A PREROUTING -j CT --zone-orig 6", "CT         0    --  0.0.0.0/0            0.0.0.0/0            CT zone-orig 6", "CT         all  --  anywhere             anywhere             CT zone-orig 6")]
    [InlineData(4, "raw", "OUTPUT", "-j CT --zone-orig 6 --zone-reply 7", "-A OUTPUT -j CT --zone 7", "CT         0    --  0.0.0.0/0            0.0.0.0/0            CT zone 7", "CT         all  --  anywhere             anywhere             CT zone 7")]
    [InlineData(4, "raw", "PREROUTING", "-p tcp -j CT --helper ftp", "-A PREROUTING -p tcp -j CT --helper ftp", "CT         6    --  0.0.0.0/0            0.0.0.0/0            CT helper ftp", "CT         tcp  --  anywhere             anywhere             CT helper ftp")]
    [InlineData(4, "raw", "PREROUTING", "-j CT --ctevents new,related,destroy,reply,assured,protoinfo,helper,mark --expevents new", "-A PREROUTING -j CT --ctevents new,related,destroy,reply,assured,protoinfo,helper,mark --expevents new", "CT         0    --  0.0.0.0/0            0.0.0.0/0            CT ctevents new,related,destroy,reply,assured,protoinfo,helper,mark expevents new", "CT         all  --  anywhere             anywhere             CT ctevents new,related,destroy,reply,assured,protoinfo,helper,mark expevents new")]
    [InlineData(4, "raw", "PREROUTING", "-j NOTRACK", "-A PREROUTING -j NOTRACK", "CT         0    --  0.0.0.0/0            0.0.0.0/0            NOTRACK", "CT         all  --  anywhere             anywhere             NOTRACK")]
    [InlineData(6, "raw", "OUTPUT", "-j NOTRACK", "-A OUTPUT -j NOTRACK", "CT         0    --  ::/0                 ::/0                 NOTRACK", "CT         all  --  anywhere             anywhere             NOTRACK")]
    [InlineData(4, "raw", "PREROUTING", "-j TRACE", "-A PREROUTING -j TRACE", "TRACE      0    --  0.0.0.0/0            0.0.0.0/0           ", "TRACE      all  --  anywhere             anywhere            ")]
    [InlineData(4, "filter", "INPUT", "-j TRACE", "-A INPUT -j TRACE", "TRACE      0    --  0.0.0.0/0            0.0.0.0/0           ", "TRACE      all  --  anywhere             anywhere            ")]
    [InlineData(4, "filter", "INPUT", "-j AUDIT --type ACCEPT", "-A INPUT -j AUDIT --type accept", "AUDIT      0    --  0.0.0.0/0            0.0.0.0/0            AUDIT accept", "AUDIT      all  --  anywhere             anywhere             AUDIT accept")]
    [InlineData(4, "mangle", "POSTROUTING", "-p udp -j CHECKSUM --checksum-fill", "-A POSTROUTING -p udp -j CHECKSUM --checksum-fill", "CHECKSUM   17   --  0.0.0.0/0            0.0.0.0/0            CHECKSUM fill", "CHECKSUM   udp  --  anywhere             anywhere             CHECKSUM fill")]
    [InlineData(4, "mangle", "POSTROUTING", "-j CLASSIFY --set-class 1:-1", "-A POSTROUTING -j CLASSIFY --set-class 0001:ffff", "CLASSIFY   0    --  0.0.0.0/0            0.0.0.0/0            CLASSIFY set 1:ffff", "CLASSIFY   all  --  anywhere             anywhere             CLASSIFY set 1:ffff")]
    [InlineData(4, "filter", "OUTPUT", "-j CLASSIFY --set-class 10:abc", "-A OUTPUT -j CLASSIFY --set-class 0010:0abc", "CLASSIFY   0    --  0.0.0.0/0            0.0.0.0/0            CLASSIFY set 10:abc", "CLASSIFY   all  --  anywhere             anywhere             CLASSIFY set 10:abc")]
    [InlineData(4, "filter", "INPUT", "-j NFQUEUE", "-A INPUT -j NFQUEUE --queue-num 0", "NFQUEUE    0    --  0.0.0.0/0            0.0.0.0/0            NFQUEUE num 0", "NFQUEUE    all  --  anywhere             anywhere             NFQUEUE num 0")]
    [InlineData(4, "filter", "INPUT", "-j NFQUEUE --queue-balance 4:", "-A INPUT -j NFQUEUE --queue-balance 4:65535", "NFQUEUE    0    --  0.0.0.0/0            0.0.0.0/0            NFQUEUE balance 4:65535", "NFQUEUE    all  --  anywhere             anywhere             NFQUEUE balance 4:65535")]
    [InlineData(4, "filter", "INPUT", "-j NFQUEUE --queue-balance 0:6 --queue-cpu-fanout --queue-bypass", "-A INPUT -j NFQUEUE --queue-balance 0:6 --queue-bypass --queue-cpu-fanout", "NFQUEUE    0    --  0.0.0.0/0            0.0.0.0/0            NFQUEUE balance 0:6 bypass cpu-fanout", "NFQUEUE    all  --  anywhere             anywhere             NFQUEUE balance 0:6 bypass cpu-fanout")]
    [InlineData(6, "filter", "INPUT", "-j NFQUEUE --queue-num 7 --queue-bypass", "-A INPUT -j NFQUEUE --queue-num 7 --queue-bypass", "NFQUEUE    0    --  ::/0                 ::/0                 NFQUEUE num 7 bypass", "NFQUEUE    all  --  anywhere             anywhere             NFQUEUE num 7 bypass")]
    [InlineData(4, "filter", "INPUT", "-j IDLETIMER --timeout 42 --label bar --alarm", "-A INPUT -j IDLETIMER --timeout 42 --label bar --alarm", "IDLETIMER  0    --  0.0.0.0/0            0.0.0.0/0            timeout:42 label:bar alarm", "IDLETIMER  all  --  anywhere             anywhere             timeout:42 label:bar alarm")]
    [InlineData(4, "filter", "INPUT", "-j IDLETIMER --timeout 5 --label 0123456789012345678901234567890", "-A INPUT -j IDLETIMER --timeout 5 --label 012345678901234567890123456", "IDLETIMER  0    --  0.0.0.0/0            0.0.0.0/0            timeout:5 label:012345678901234567890123456", "IDLETIMER  all  --  anywhere             anywhere             timeout:5 label:012345678901234567890123456")]
    [InlineData(4, "filter", "INPUT", "-j RATEEST --rateest-name RE1 --rateest-interval 250.0ms --rateest-ewmalog 500.0ms", "-A INPUT -j RATEEST --rateest-name RE1 --rateest-interval 250.0ms --rateest-ewmalog 500.0ms", "RATEEST    0    --  0.0.0.0/0            0.0.0.0/0            name RE1 interval 250.0ms ewmalog 500.0ms", "RATEEST    all  --  anywhere             anywhere             name RE1 interval 250.0ms ewmalog 500.0ms")]
    [InlineData(4, "filter", "INPUT", "-j RATEEST --rateest-name RE2 --rateest-interval 1s --rateest-ewmalog 8s", "-A INPUT -j RATEEST --rateest-name RE2 --rateest-interval 1.0s --rateest-ewmalog 8.0s", "RATEEST    0    --  0.0.0.0/0            0.0.0.0/0            name RE2 interval 1.0s ewmalog 8.0s", "RATEEST    all  --  anywhere             anywhere             name RE2 interval 1.0s ewmalog 8.0s")]
    public void Accepted_rules_save_and_list_as_iptables_does(int family, string table, string chain, string rule, string saved, string listNumeric, string listNames)
    {
        var add = Run(family, ["-t", table, "-A", chain, .. Split(rule)]);
        add.Err.ShouldNotContain("(nf_tables)");
        add.Rc.ShouldBe(0);
        LastLine(Run(family, "-t", table, "-S", chain).Out).ShouldBe(saved);
        LastLine(Run(family, "-t", table, "-L", chain, "-n").Out).ShouldBe(listNumeric);
        LastLine(Run(family, "-t", table, "-L", chain).Out).ShouldBe(listNames);
    }

    [Theory]
    [InlineData(4, "filter", "INPUT", "-j LOG --log-prefix \"\"", 2, "iptables v1.8.9 (nf_tables): Argument must have a minimum length of 1 characters")]
    [InlineData(4, "filter", "INPUT", "-j LOG --log-level bad", 2, "iptables v1.8.9 (nf_tables): log level \"bad\" unknown")]
    [InlineData(4, "filter", "INPUT", "-j LOG ! --log-uid", 2, "iptables v1.8.9 (nf_tables): LOG: option \"--log-uid\" cannot be inverted.")]
    [InlineData(4, "filter", "INPUT", "-j NFLOG --nflog-range 5 --nflog-size 3", 2, "warn: --nflog-range has never worked and is no longer supported, please use --nflog-size instead")]
    [InlineData(4, "filter", "INPUT", "-j NFLOG --nflog-group 65536", 2, "iptables v1.8.9 (nf_tables): NFLOG: bad value for option \"--nflog-group\", or out of range (0-65535).")]
    [InlineData(4, "filter", "INPUT", "-j REJECT --reject-with tcp-reset", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT")]
    [InlineData(4, "filter", "INPUT", "-j REJECT --reject-with e", 2, "--reject-with echo-reply no longer supported")]
    [InlineData(4, "filter", "INPUT", "-j REJECT --reject-with foo", 2, "iptables v1.8.9 (nf_tables): unknown reject type \"foo\"")]
    [InlineData(4, "mangle", "INPUT", "-j REJECT", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT")]
    [InlineData(6, "filter", "INPUT", "! -p tcp -j REJECT --reject-with tcp-reset", 4, "ip6tables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT")]
    [InlineData(4, "filter", "INPUT", "-j MARK --set-xmark 1x", 2, "iptables v1.8.9 (nf_tables): MARK: trailing garbage after value for option \"--set-xmark\".")]
    [InlineData(4, "filter", "INPUT", "-j MARK --set-xmark 4294967296", 2, "iptables v1.8.9 (nf_tables): MARK: bad integer value for option \"--set-xmark\", or out of range.")]
    [InlineData(4, "filter", "INPUT", "-j MARK --set-mark 1 --and-mark 2", 2, "iptables v1.8.9 (nf_tables): MARK: option \"--set-mark\" cannot be used together with \"--and-mark\".")]
    [InlineData(4, "filter", "INPUT", "-j MARK", 2, "iptables v1.8.9 (nf_tables): MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required")]
    [InlineData(4, "mangle", "PREROUTING", "-j CONNMARK --ctmask 1 --mask 2", 2, "iptables v1.8.9 (nf_tables): CONNMARK target: No operation specified")]
    [InlineData(4, "mangle", "PREROUTING", "-j CONNMARK --save-mark --ctmask 1 --mask 2", 2, "iptables v1.8.9 (nf_tables): CONNMARK: option \"--ctmask\" cannot be used together with \"--mask\".")]
    [InlineData(4, "filter", "INPUT", "-j CONNSECMARK --save", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT")]
    [InlineData(4, "mangle", "INPUT", "-j CONNSECMARK", 2, "iptables v1.8.9 (nf_tables): CONNSECMARK target: parameter required")]
    [InlineData(4, "security", "INPUT", "-j SECMARK --selctx system_u:object_r:firewalld_exec_t:s0", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (No such file or directory): rule in chain INPUT")]
    [InlineData(4, "filter", "INPUT", "-j SECMARK --selctx foo", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT")]
    [InlineData(4, "raw", "PREROUTING", "-j CT --zone 65536", 2, "iptables v1.8.9 (nf_tables): Cannot parse 65536 as a zone ID")]
    [InlineData(4, "raw", "PREROUTING", "-j CT --helper ftp", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (No such file or directory): rule in chain PREROUTING")]
    [InlineData(6, "raw", "PREROUTING", "-p tcp -j CT --helper irc", 4, "ip6tables v1.8.9 (nf_tables):  RULE_APPEND failed (No such file or directory): rule in chain PREROUTING")]
    [InlineData(4, "raw", "PREROUTING", "-p tcp -j CT --timeout test", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (No such file or directory): rule in chain PREROUTING")]
    [InlineData(4, "raw", "PREROUTING", "-j CT --ctevents new,foo", 2, "iptables v1.8.9 (nf_tables): Unknown event type \"foo\"")]
    [InlineData(4, "filter", "INPUT", "-j CT --notrack", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT")]
    [InlineData(4, "filter", "INPUT", "-j NOTRACK", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT")]
    [InlineData(4, "raw", "PREROUTING", "-j NOTRACK --notrack", 2, "iptables v1.8.9 (nf_tables): unknown option \"--notrack\"")]
    [InlineData(4, "filter", "INPUT", "-j AUDIT --type wrong", 2, "iptables v1.8.9 (nf_tables): Bad action type value \"wrong\"")]
    [InlineData(4, "filter", "INPUT", "-j AUDIT", 2, "iptables v1.8.9 (nf_tables): AUDIT: option \"--type\" must be specified")]
    [InlineData(4, "filter", "INPUT", "-j CHECKSUM --checksum-fill", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT")]
    [InlineData(4, "mangle", "POSTROUTING", "-j CHECKSUM", 2, "iptables v1.8.9 (nf_tables): CHECKSUM: option \"--checksum-fill\" must be specified")]
    [InlineData(4, "mangle", "INPUT", "-j CLASSIFY --set-class 10:abc", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT")]
    [InlineData(4, "mangle", "POSTROUTING", "-j CLASSIFY --set-class x", 2, "iptables v1.8.9 (nf_tables): Bad class value \"x\"")]
    [InlineData(4, "filter", "INPUT", "-j NFQUEUE --queue-balance :", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT")]
    [InlineData(4, "filter", "INPUT", "-j NFQUEUE --queue-balance 4:3", 2, "iptables v1.8.9 (nf_tables): 4 should be less than 3")]
    [InlineData(4, "filter", "INPUT", "-j NFQUEUE --queue-balance 1:2:3", 2, "iptables v1.8.9 (nf_tables): NFQUEUE: Too many components for option \"--queue-balance\" (max: 2)")]
    [InlineData(4, "filter", "INPUT", "-j NFQUEUE --queue-cpu-fanout", 2, "iptables v1.8.9 (nf_tables): NFQUEUE: option \"--queue-cpu-fanout\" also requires \"--queue-balance\".")]
    [InlineData(4, "filter", "INPUT", "-j NFQUEUE --queue-num 3 --queue-balance 1:2", 2, "iptables v1.8.9 (nf_tables): NFQUEUE: option \"--queue-num\" cannot be used together with \"--queue-balance\".")]
    [InlineData(4, "filter", "INPUT", "-j IDLETIMER --timeout 42", 2, "iptables v1.8.9 (nf_tables): IDLETIMER: option \"--label\" must be specified")]
    [InlineData(4, "filter", "INPUT", "-j IDLETIMER --timeout 0 --label bar2", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT")]
    [InlineData(4, "filter", "INPUT", "-j LED", 2, "Warning: Extension LED revision 0 not supported, missing kernel module?")]
    [InlineData(4, "filter", "INPUT", "-j LED --led-trigger-id foo", 4, "Warning: Extension LED revision 0 not supported, missing kernel module?")]
    [InlineData(4, "filter", "INPUT", "-j RATEEST", 2, "iptables v1.8.9 (nf_tables): RATEEST: ewmalog value is out of range")]
    public void Refused_rules_fail_as_iptables_does(int family, string table, string chain, string rule, int exit, string firstErrorLine)
    {
        var add = Run(family, ["-t", table, "-A", chain, .. Split(rule)]);
        add.Rc.ShouldBe(exit);
        add.Err.Split('\n')[0].ShouldBe(firstErrorLine);
    }

    [Fact]
    public void Warnings_of_extensions_come_before_the_error_in_restore()
    {
        var store = new HostStore(_dir);
        var o = new StringWriter();
        var e = new StringWriter();
        string rules = "*filter\n-A INPUT -j NFLOG --nflog-range 5\n-A INPUT -j REJECT --reject-with e\nCOMMIT\n";
        var io = new ToolIo { In = new StringReader(rules), Out = o, Err = e };
        int rc = IptablesCompat.Restore(IpFamily.V4, ["iptables-restore"], store, io);
        rc.ShouldBe(2);
        e.ToString().ShouldBe(
            "warn: --nflog-range has never worked and is no longer supported, please use --nflog-size instead\n"
            + "--reject-with echo-reply no longer supported\n"
            + "iptables-restore v1.8.9 (nf_tables): unknown reject type \"e\"\n"
            + "Error occurred at line: 3\n"
            + "Try `iptables-restore -h' or 'iptables-restore --help' for more information.\n");
    }

    [Fact]
    public void Led_warns_at_load_and_the_kernel_refuses_it()
    {
        var add = Run(4, "-A", "INPUT", "-j", "LED", "--led-trigger-id", "foo");
        add.Rc.ShouldBe(4);
        add.Err.ShouldBe(
            "Warning: Extension LED revision 0 not supported, missing kernel module?\n"
            + "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (No such file or directory): rule in chain INPUT\n");
    }
}
