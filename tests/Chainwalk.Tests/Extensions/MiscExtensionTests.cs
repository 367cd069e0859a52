using System.Text;
using Chainwalk.Compat;
using Chainwalk.Extensions;
using Chainwalk.Host;
using Chainwalk.Net;
using Xunit;

namespace Chainwalk.Tests.Extensions;

/// <summary>
/// The misc group (comment, limit, hashlimit, recent, statistic, string, time, owner, set, nfacct, quota,
/// socket, cgroup, cluster, policy, rpfilter, u32, bpf, osf, ipvs, rateest). Each row: one rule added with
/// -A, then the exit code, the first stderr line, the -S line and the last -L -n / -L line. Every expected
/// value was produced by the real iptables 1.8.9 (nf_tables) in a private network namespace holding the
/// ipsets s4 (inet), s6 (inet6), l (list:set) and the nfacct object acct1.
/// </summary>
public class MiscExtensionTests
{
    internal static KernelObjects Objects()
    {
        var k = new KernelObjects();
        k.IpSets["s4"] = IpFamily.V4;
        k.IpSets["s6"] = IpFamily.V6;
        k.IpSets["l"] = null;
        k.NfacctObjects.Add("acct1");
        return k;
    }

    /// <summary>shlex.split: blanks separate words; '…' literal; "…" with \" and \\ escapes; \ outside quotes escapes.</summary>
    internal static List<string> ShellSplit(string s)
    {
        var words = new List<string>();
        var cur = new StringBuilder();
        bool inWord = false;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == ' ')
            {
                if (inWord) words.Add(cur.ToString());
                cur.Clear();
                inWord = false;
                continue;
            }
            inWord = true;
            if (c == '\'')
            {
                int j = s.IndexOf('\'', i + 1);
                cur.Append(s, i + 1, j - i - 1);
                i = j;
            }
            else if (c == '"')
            {
                for (i++; s[i] != '"'; i++)
                {
                    if (s[i] == '\\' && (s[i + 1] == '"' || s[i + 1] == '\\')) i++;
                    cur.Append(s[i]);
                }
            }
            else if (c == '\\')
            {
                cur.Append(s[++i]);
            }
            else
            {
                cur.Append(c);
            }
        }
        if (inWord) words.Add(cur.ToString());
        return words;
    }

    private static (int Rc, string Out, string Err) Run(IpFamily family, HostStore store, params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var io = new ToolIo { In = TextReader.Null, Out = o, Err = e };
        string[] argv = [family.Tool(), .. args];
        int rc = IptablesCompat.Run(family, argv, store, io);
        return (rc, o.ToString(), e.ToString());
    }

    private static string LastLine(string text)
    {
        string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return lines.Length == 0 ? string.Empty : lines[^1];
    }

    internal static void Check(string fam, string table, string chain, string args, int rc, string err, string saved, string listNumeric, string list)
    {
        IpFamily family = fam == "4" ? IpFamily.V4 : IpFamily.V6;
        KernelObjects.Current = Objects();
        DirectoryInfo dir = Directory.CreateTempSubdirectory("cw-misc-");
        try
        {
            var store = new HostStore(dir.FullName);
            var (gotRc, _, gotErr) = Run(family, store, ["-t", table, "-A", chain, .. ShellSplit(args)]);
            string firstErr = gotErr.Trim('\n').Split('\n')[0];
            Assert.Equal((rc, err), (gotRc, firstErr));
            if (rc != 0) return;
            Assert.Equal(saved, LastLine(Run(family, store, "-t", table, "-S", chain).Out));
            Assert.Equal(listNumeric, LastLine(Run(family, store, "-t", table, "-L", chain, "-n").Out));
            Assert.Equal(list, LastLine(Run(family, store, "-t", table, "-L", chain).Out));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("4", "filter", "INPUT", "-m limit --limit 13/min --limit-burst 0", 0, "", "-A INPUT -m limit --limit 13/min", "           0    --  0.0.0.0/0            0.0.0.0/0            limit: avg 13/min burst 5", "           all  --  anywhere             anywhere             limit: avg 13/min burst 5")]
    [InlineData("4", "filter", "INPUT", "-m limit --limit 7x/s", 0, "", "-A INPUT -m limit --limit 7/sec", "           0    --  0.0.0.0/0            0.0.0.0/0            limit: avg 7/sec burst 5", "           all  --  anywhere             anywhere             limit: avg 7/sec burst 5")]
    [InlineData("4", "filter", "INPUT", "-m limit --limit \" 07/\"", 2, "iptables v1.8.9 (nf_tables): bad rate \" 07/\"'", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m limit --limit -3/s", 2, "iptables v1.8.9 (nf_tables): Rate too fast \"-3/s\"", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m limit --limit 3601/h", 0, "", "-A INPUT -m limit --limit 3601/hour", "           0    --  0.0.0.0/0            0.0.0.0/0            limit: avg 3601/hour burst 5", "           all  --  anywhere             anywhere             limit: avg 3601/hour burst 5")]
    [InlineData("4", "filter", "INPUT", "-m limit --limit 7/M", 0, "", "-A INPUT -m limit --limit 7/min", "           0    --  0.0.0.0/0            0.0.0.0/0            limit: avg 7/min burst 5", "           all  --  anywhere             anywhere             limit: avg 7/min burst 5")]
    [InlineData("4", "filter", "INPUT", "-m limit --limit 7/sec/", 2, "iptables v1.8.9 (nf_tables): bad rate \"7/sec/\"'", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m comment --comment \"a b\\\"c\\\\d'e\"", 0, "", "-A INPUT -m comment --comment \"a b\\\"c\\\\d\\'e\"", "           0    --  0.0.0.0/0            0.0.0.0/0            /* a b\"c\\d'e */", "           all  --  anywhere             anywhere             /* a b\"c\\d'e */")]
    [InlineData("4", "filter", "INPUT", "-m comment --comment \"\"", 0, "", "-A INPUT -m comment --comment \"\"", "           0    --  0.0.0.0/0            0.0.0.0/0            /*  */", "           all  --  anywhere             anywhere             /*  */")]
    [InlineData("4", "filter", "INPUT", "-m comment --comment \u00e9", 0, "", "-A INPUT -m comment --comment \"\u00e9\"", "           0    --  0.0.0.0/0            0.0.0.0/0            /* \u00e9 */", "           all  --  anywhere             anywhere             /* \u00e9 */")]
    [InlineData("4", "filter", "INPUT", "-m limit --limit 1/sec --limit 2/sec", 2, "iptables v1.8.9 (nf_tables): limit: option \"--limit\" can only be used once.", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m limit --limit-burst 10001", 2, "iptables v1.8.9 (nf_tables): limit: bad value for option \"--limit-burst\", or out of range (0-10000).", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m limit --limit 2/d --limit-burst 3", 0, "", "-A INPUT -m limit --limit 2/day --limit-burst 3", "           0    --  0.0.0.0/0            0.0.0.0/0            limit: avg 2/day burst 3", "           all  --  anywhere             anywhere             limit: avg 2/day burst 3")]
    [InlineData("4", "filter", "INPUT", "-m recent --set", 0, "", "-A INPUT -m recent --set --name DEFAULT --mask 255.255.255.255 --rsource", "           0    --  0.0.0.0/0            0.0.0.0/0            recent: SET name: DEFAULT side: source mask: 255.255.255.255", "           all  --  anywhere             anywhere             recent: SET name: DEFAULT side: source mask: 255.255.255.255")]
    [InlineData("4", "filter", "INPUT", "-m recent ! --rcheck --seconds 60 --reap --hitcount 3 --rttl --name foo --rdest --mask 255.255.0.0", 0, "", "-A INPUT -m recent ! --rcheck --seconds 60 --reap --hitcount 3 --rttl --name foo --mask 255.255.0.0 --rdest", "           0    --  0.0.0.0/0            0.0.0.0/0            ! recent: CHECK seconds: 60 reap hit_count: 3 TTL-Match name: foo side: dest mask: 255.255.0.0", "           all  --  anywhere             anywhere             ! recent: CHECK seconds: 60 reap hit_count: 3 TTL-Match name: foo side: dest mask: 255.255.0.0")]
    [InlineData("4", "filter", "INPUT", "-m recent --update --seconds 0", 2, "iptables v1.8.9 (nf_tables): recent: bad value for option \"--seconds\", or out of range (1-4294967295).", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m recent --set --rcheck", 2, "iptables v1.8.9 (nf_tables): recent: option \"--set\" cannot be used together with \"--rcheck\".", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m recent --set --seconds 5", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m recent --reap", 2, "iptables v1.8.9 (nf_tables): recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m recent --rcheck --reap --seconds 4", 0, "", "-A INPUT -m recent --rcheck --seconds 4 --reap --name DEFAULT --mask 255.255.255.255 --rsource", "           0    --  0.0.0.0/0            0.0.0.0/0            recent: CHECK seconds: 4 reap name: DEFAULT side: source mask: 255.255.255.255", "           all  --  anywhere             anywhere             recent: CHECK seconds: 4 reap name: DEFAULT side: source mask: 255.255.255.255")]
    [InlineData("4", "filter", "INPUT", "-m recent --rcheck --hitcount 255", 0, "", "-A INPUT -m recent --rcheck --hitcount 255 --name DEFAULT --mask 255.255.255.255 --rsource", "           0    --  0.0.0.0/0            0.0.0.0/0            recent: CHECK hit_count: 255 name: DEFAULT side: source mask: 255.255.255.255", "           all  --  anywhere             anywhere             recent: CHECK hit_count: 255 name: DEFAULT side: source mask: 255.255.255.255")]
    [InlineData("4", "filter", "INPUT", "-m recent --rcheck --hitcount 256", 0, "", "-A INPUT -m recent --rcheck --hitcount 256 --name DEFAULT --mask 255.255.255.255 --rsource", "           0    --  0.0.0.0/0            0.0.0.0/0            recent: CHECK hit_count: 256 name: DEFAULT side: source mask: 255.255.255.255", "           all  --  anywhere             anywhere             recent: CHECK hit_count: 256 name: DEFAULT side: source mask: 255.255.255.255")]
    [InlineData("4", "filter", "INPUT", "-m recent --rcheck --name \"\"", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m recent --rcheck --name \"a/b\"", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m recent --rcheck --name ..", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m recent --rcheck --mask 1.2.3.4.5", 2, "iptables v1.8.9 (nf_tables): getaddrinfo: Name or service not known", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m recent --rcheck --mask localhost", 0, "", "-A INPUT -m recent --rcheck --name DEFAULT --mask 127.0.0.1 --rsource", "           0    --  0.0.0.0/0            0.0.0.0/0            recent: CHECK name: DEFAULT side: source mask: 127.0.0.1", "           all  --  anywhere             anywhere             recent: CHECK name: DEFAULT side: source mask: 127.0.0.1")]
    [InlineData("4", "filter", "INPUT", "-m recent --rcheck --mask ::1", 2, "iptables v1.8.9 (nf_tables): getaddrinfo: Address family for hostname not supported", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m recent --set --rttl", 2, "iptables v1.8.9 (nf_tables): recent: option \"--rttl\" cannot be used together with \"--set\".", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m recent --rcheck --rsource --rdest", 0, "", "-A INPUT -m recent --rcheck --name DEFAULT --mask 255.255.255.255 --rdest", "           0    --  0.0.0.0/0            0.0.0.0/0            recent: CHECK name: DEFAULT side: dest mask: 255.255.255.255", "           all  --  anywhere             anywhere             recent: CHECK name: DEFAULT side: dest mask: 255.255.255.255")]
    [InlineData("4", "filter", "INPUT", "-m recent --rcheck --rdest --rsource", 0, "", "-A INPUT -m recent --rcheck --name DEFAULT --mask 255.255.255.255 --rsource", "           0    --  0.0.0.0/0            0.0.0.0/0            recent: CHECK name: DEFAULT side: source mask: 255.255.255.255", "           all  --  anywhere             anywhere             recent: CHECK name: DEFAULT side: source mask: 255.255.255.255")]
    [InlineData("4", "filter", "INPUT", "-m recent", 2, "iptables v1.8.9 (nf_tables): recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m recent --rcheck --name foo -m recent --set --name foo --mask 255.0.0.0", 0, "", "-A INPUT -m recent --rcheck --name foo --mask 255.255.255.255 --rsource -m recent --set --name foo --mask 255.0.0.0 --rsource", "           0    --  0.0.0.0/0            0.0.0.0/0            recent: CHECK name: foo side: source mask: 255.255.255.255 recent: SET name: foo side: source mask: 255.0.0.0", "           all  --  anywhere             anywhere             recent: CHECK name: foo side: source mask: 255.255.255.255 recent: SET name: foo side: source mask: 255.0.0.0")]
    [InlineData("4", "filter", "INPUT", "-m recent --remove --name 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789x", 0, "", "-A INPUT -m recent --remove --name 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789x --mask 255.255.255.255 --rsource", "           0    --  0.0.0.0/0            0.0.0.0/0            recent: REMOVE name: 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789x side: source mask: 255.255.255.255", "           all  --  anywhere             anywhere             recent: REMOVE name: 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789x side: source mask: 255.255.255.255")]
    [InlineData("6", "filter", "INPUT", "-m recent --rcheck --mask 255.255.255.0", 2, "ip6tables v1.8.9 (nf_tables): getaddrinfo: Address family for hostname not supported", "", "", "")]
    [InlineData("6", "filter", "INPUT", "-m recent --rcheck --mask ffff::", 0, "", "-A INPUT -m recent --rcheck --name DEFAULT --mask ffff:: --rsource", "           0    --  ::/0                 ::/0                 recent: CHECK name: DEFAULT side: source mask: ffff::", "           all  --  anywhere             anywhere             recent: CHECK name: DEFAULT side: source mask: ffff::")]
    [InlineData("6", "filter", "INPUT", "-m recent --rcheck --mask ::1", 0, "", "-A INPUT -m recent --rcheck --name DEFAULT --mask ::1 --rsource", "           0    --  ::/0                 ::/0                 recent: CHECK name: DEFAULT side: source mask: ::1", "           all  --  anywhere             anywhere             recent: CHECK name: DEFAULT side: source mask: ::1")]
    [InlineData("6", "filter", "INPUT", "-m recent ! --update --seconds 3 --rdest", 0, "", "-A INPUT -m recent ! --update --seconds 3 --name DEFAULT --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rdest", "           0    --  ::/0                 ::/0                 ! recent: UPDATE seconds: 3 name: DEFAULT side: dest mask: ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "           all  --  anywhere             anywhere             ! recent: UPDATE seconds: 3 name: DEFAULT side: dest mask: ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")]
    [InlineData("4", "filter", "INPUT", "-m statistic", 2, "iptables v1.8.9 (nf_tables): --probability must be specified when using random mode", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode random --probability 0.5", 0, "", "-A INPUT -m statistic --mode random --probability 0.50000000000", "           0    --  0.0.0.0/0            0.0.0.0/0            statistic mode random probability 0.50000000000", "           all  --  anywhere             anywhere             statistic mode random probability 0.50000000000")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode random ! --probability 0.333333", 0, "", "-A INPUT -m statistic --mode random ! --probability 0.33333300008", "           0    --  0.0.0.0/0            0.0.0.0/0            statistic mode random ! probability 0.33333300008", "           all  --  anywhere             anywhere             statistic mode random ! probability 0.33333300008")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode random --probability 1", 0, "", "-A INPUT -m statistic --mode random --probability 1.00000000000", "           0    --  0.0.0.0/0            0.0.0.0/0            statistic mode random probability 1.00000000000", "           all  --  anywhere             anywhere             statistic mode random probability 1.00000000000")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode random --probability 0", 0, "", "-A INPUT -m statistic --mode random --probability 0.00000000000", "           0    --  0.0.0.0/0            0.0.0.0/0            statistic mode random probability 0.00000000000", "           all  --  anywhere             anywhere             statistic mode random probability 0.00000000000")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode random --probability 1e-3", 0, "", "-A INPUT -m statistic --mode random --probability 0.00100000016", "           0    --  0.0.0.0/0            0.0.0.0/0            statistic mode random probability 0.00100000016", "           all  --  anywhere             anywhere             statistic mode random probability 0.00100000016")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode random --probability .2", 0, "", "-A INPUT -m statistic --mode random --probability 0.20000000019", "           0    --  0.0.0.0/0            0.0.0.0/0            statistic mode random probability 0.20000000019", "           all  --  anywhere             anywhere             statistic mode random probability 0.20000000019")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode random --probability 2", 2, "iptables v1.8.9 (nf_tables): statistic: bad value for option \"--probability\", or out of range (0-1).", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode random --probability abc", 2, "iptables v1.8.9 (nf_tables): statistic: bad value for option \"--probability\", or out of range (0-1).", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode nth --every 3 --packet 0", 0, "", "-A INPUT -m statistic --mode nth --every 3 --packet 0", "           0    --  0.0.0.0/0            0.0.0.0/0            statistic mode nth every 3", "           all  --  anywhere             anywhere             statistic mode nth every 3")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode nth ! --every 3 --packet 2", 0, "", "-A INPUT -m statistic --mode nth ! --every 3 --packet 2", "           0    --  0.0.0.0/0            0.0.0.0/0            statistic mode nth ! every 3 packet 2", "           all  --  anywhere             anywhere             statistic mode nth ! every 3 packet 2")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode nth --every 3 --packet 3", 2, "iptables v1.8.9 (nf_tables): the --packet p must be 0 <= p <= n-1", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode nth --packet 3", 2, "iptables v1.8.9 (nf_tables): the --packet p must be 0 <= p <= n-1", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode nth --every 3", 2, "iptables v1.8.9 (nf_tables): statistic: option \"--every\" also requires \"--packet\".", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode nth --every 0 --packet 0", 2, "iptables v1.8.9 (nf_tables): statistic: bad value for option \"--every\", or out of range (1-4294967295).", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode nth --every 1 --packet 0", 0, "", "-A INPUT -m statistic --mode nth --every 1 --packet 0", "           0    --  0.0.0.0/0            0.0.0.0/0            statistic mode nth every 1", "           all  --  anywhere             anywhere             statistic mode nth every 1")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode foo", 2, "iptables v1.8.9 (nf_tables): Bad mode \"foo\"", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode random --every 2 --packet 1", 2, "iptables v1.8.9 (nf_tables): --probability must be specified when using random mode", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode nth --probability 0.5", 2, "iptables v1.8.9 (nf_tables): --every and --packet must be specified when using nth mode", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m statistic --probability 0.5", 2, "iptables v1.8.9 (nf_tables): statistic: option \"--mode\" must be specified", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m statistic --mode random --probability 0.5 --probability 0.2", 2, "iptables v1.8.9 (nf_tables): statistic: option \"--probability\" can only be used once.", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 40/min --hashlimit-name a --hashlimit-rate-match", 0, "", "-A INPUT -m hashlimit --hashlimit-upto 40/sec --hashlimit-burst 5 --hashlimit-name a --hashlimit-htable-expire 60000 --hashlimit-rate-match --hashlimit-rate-interval 60", "           0    --  0.0.0.0/0            0.0.0.0/0            limit: up to 40/min burst 5 rate-match rate-interval 60", "           all  --  anywhere             anywhere             limit: up to 40/min burst 5 rate-match rate-interval 60")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 40/min --hashlimit-name a --hashlimit-rate-match --hashlimit-rate-interval 1", 0, "", "-A INPUT -m hashlimit --hashlimit-upto 40/sec --hashlimit-burst 5 --hashlimit-name a --hashlimit-htable-expire 60000 --hashlimit-rate-match", "           0    --  0.0.0.0/0            0.0.0.0/0            limit: up to 40/sec burst 5 htable-expire 60000 rate-match", "           all  --  anywhere             anywhere             limit: up to 40/sec burst 5 htable-expire 60000 rate-match")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-above 5/s --hashlimit-burst 10 --hashlimit-mode srcip,dstport,srcport,dstip --hashlimit-name a2 --hashlimit-srcmask 24 --hashlimit-dstmask 0 --hashlimit-htable-size 100 --hashlimit-htable-gcinterval 5", 0, "", "-A INPUT -m hashlimit --hashlimit-above 5/sec --hashlimit-burst 10 --hashlimit-mode srcip,srcport,dstip,dstport --hashlimit-name a2 --hashlimit-htable-size 100 --hashlimit-htable-gcinterval 5 --hashlimit-srcmask 24 --hashlimit-dstmask 0", "           0    --  0.0.0.0/0            0.0.0.0/0            limit: above 5/sec burst 10 mode srcip-srcport-dstip-dstport htable-size 100 htable-gcinterval 5 srcmask 24 dstmask 0", "           all  --  anywhere             anywhere             limit: above 5/sec burst 10 mode srcip-srcport-dstip-dstport htable-size 100 htable-gcinterval 5 srcmask 24 dstmask 0")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit ! --hashlimit-above 5/s --hashlimit-name abcdefghijklmnopqrstuvwxyz", 0, "", "-A INPUT -m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name abcdefghijklmnopqrstuvwxyz", "           0    --  0.0.0.0/0            0.0.0.0/0            limit: up to 5/sec burst 5", "           all  --  anywhere             anywhere             limit: up to 5/sec burst 5")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit ! --hashlimit 5/hour --hashlimit-name x", 0, "", "-A INPUT -m hashlimit --hashlimit-above 5/hour --hashlimit-burst 5 --hashlimit-name x", "           0    --  0.0.0.0/0            0.0.0.0/0            limit: above 5/hour burst 5", "           all  --  anywhere             anywhere             limit: above 5/hour burst 5")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 1kb/s --hashlimit-name x", 0, "", "-A INPUT -m hashlimit --hashlimit-upto 1kb/s --hashlimit-name x", "           0    --  0.0.0.0/0            0.0.0.0/0            limit: up to 1kb/s", "           all  --  anywhere             anywhere             limit: up to 1kb/s")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 1mb/s --hashlimit-burst 10mb --hashlimit-name x", 0, "", "-A INPUT -m hashlimit --hashlimit-upto 1mb/s --hashlimit-burst 10mb --hashlimit-name x", "           0    --  0.0.0.0/0            0.0.0.0/0            limit: up to 1mb/s burst 10mb", "           all  --  anywhere             anywhere             limit: up to 1mb/s burst 10mb")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 100b/s --hashlimit-burst 10 --hashlimit-name x", 2, "iptables v1.8.9 (nf_tables): burst cannot be smaller than 96b", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 100b/s --hashlimit-burst 1000 --hashlimit-name x", 0, "", "-A INPUT -m hashlimit --hashlimit-upto 96b/s --hashlimit-burst 1kb --hashlimit-name x", "           0    --  0.0.0.0/0            0.0.0.0/0            limit: up to 96b/s burst 1kb", "           all  --  anywhere             anywhere             limit: up to 96b/s burst 1kb")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 5/s --hashlimit-burst 1000001 --hashlimit-name x", 2, "iptables v1.8.9 (nf_tables): bad value for option \"--hashlimit-burst\", or out of range (1-1000000).", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 5/s --hashlimit-burst 0 --hashlimit-name x", 2, "iptables v1.8.9 (nf_tables): bad value for option \"--hashlimit-burst\", or out of range (1-1000000).", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 5/s --hashlimit-burst 5k --hashlimit-name x", 0, "", "-A INPUT -m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 5120 --hashlimit-name x", "           0    --  0.0.0.0/0            0.0.0.0/0            limit: up to 5/sec burst 5120", "           all  --  anywhere             anywhere             limit: up to 5/sec burst 5120")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 5/s --hashlimit-name \"\"", 2, "iptables v1.8.9 (nf_tables): Argument must have a minimum length of 1 characters", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 5/s --hashlimit-name x --hashlimit-htable-expire 0", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 5/s --hashlimit-name x --hashlimit-htable-gcinterval 0", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 5/x --hashlimit-name x", 2, "iptables v1.8.9 (nf_tables): hashlimit: Bad value for \"--hashlimit-upto\" option: \"5/x\"", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 2000000/s --hashlimit-name x", 2, "iptables v1.8.9 (nf_tables): Rate too fast \"2000000/s\"", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 2000000/min --hashlimit-name x --hashlimit-rate-match", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Numerical result out of range): rule in chain INPUT", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 5/s --hashlimit-name x --hashlimit-mode foo", 2, "iptables v1.8.9 (nf_tables): hashlimit: Bad value for \"--hashlimit-mode\" option: \"foo\"", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 5/s --hashlimit-name x --hashlimit-mode \"\"", 0, "", "-A INPUT -m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name x", "           0    --  0.0.0.0/0            0.0.0.0/0            limit: up to 5/sec burst 5", "           all  --  anywhere             anywhere             limit: up to 5/sec burst 5")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 5/s --hashlimit-name x --hashlimit-srcmask 33", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 5/s --hashlimit-name x --hashlimit-rate-interval 0", 2, "iptables v1.8.9 (nf_tables): hashlimit: Bad value for \"--hashlimit-rate-interval\" option: \"0\"", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 5/s --hashlimit-above 3/s --hashlimit-name x", 2, "iptables v1.8.9 (nf_tables): hashlimit: option \"--hashlimit-upto\" cannot be used together with \"--hashlimit-above\".", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 5/s", 2, "iptables v1.8.9 (nf_tables): hashlimit: option \"--hashlimit-name\" must be specified", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-name x", 2, "iptables v1.8.9 (nf_tables): You have to specify --hashlimit", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m hashlimit --hashlimit-upto 3/d --hashlimit-name x --hashlimit-htable-expire 86400000", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Numerical result out of range): rule in chain INPUT", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m time --timestart 01:02 --timestop 04:05:06", 0, "", "-A INPUT -m time --timestart 01:02:00 --timestop 04:05:06 --datestop 2038-01-19T03:14:07", "           0    --  0.0.0.0/0            0.0.0.0/0            TIME from 01:02:00 to 04:05:06 UTC", "           all  --  anywhere             anywhere             TIME from 01:02:00 to 04:05:06 UTC")]
    [InlineData("4", "filter", "INPUT", "-m time --timestart 22:00 --timestop 02:00 --contiguous", 0, "", "-A INPUT -m time --timestart 22:00:00 --timestop 02:00:00 --datestop 2038-01-19T03:14:07 --contiguous", "           0    --  0.0.0.0/0            0.0.0.0/0            TIME from 22:00:00 to 02:00:00 UTC contiguous", "           all  --  anywhere             anywhere             TIME from 22:00:00 to 02:00:00 UTC contiguous")]
    [InlineData("4", "filter", "INPUT", "-m time --timestart 01:00 --timestop 02:00 --contiguous", 2, "iptables v1.8.9 (nf_tables): time: --contiguous only makes sense when stoptime is smaller than starttime", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m time --weekdays Mo,Tu,Wed,Thursday,5,Sa,Su", 0, "", "-A INPUT -m time --datestop 2038-01-19T03:14:07", "           0    --  0.0.0.0/0            0.0.0.0/0            TIME UTC", "           all  --  anywhere             anywhere             TIME UTC")]
    [InlineData("4", "filter", "INPUT", "-m time ! --weekdays Mon", 0, "", "-A INPUT -m time --weekdays Tue,Wed,Thu,Fri,Sat,Sun --datestop 2038-01-19T03:14:07", "           0    --  0.0.0.0/0            0.0.0.0/0            TIME on Tue,Wed,Thu,Fri,Sat,Sun UTC", "           all  --  anywhere             anywhere             TIME on Tue,Wed,Thu,Fri,Sat,Sun UTC")]
    [InlineData("4", "filter", "INPUT", "-m time --weekdays 0", 2, "iptables v1.8.9 (nf_tables): No, the week does NOT begin with Sunday.", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m time --weekdays Xy", 2, "iptables v1.8.9 (nf_tables): Xy is not a valid day specifier", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m time --monthdays 1,2,3,11,12,13,21,22,23,31", 0, "", "-A INPUT -m time --monthdays 1,2,3,11,12,13,21,22,23,31 --datestop 2038-01-19T03:14:07", "           0    --  0.0.0.0/0            0.0.0.0/0            TIME on 1st,2nd,3rd,11st,12nd,13rd,21st,22nd,23rd,31st UTC", "           all  --  anywhere             anywhere             TIME on 1st,2nd,3rd,11st,12nd,13rd,21st,22nd,23rd,31st UTC")]
    [InlineData("4", "filter", "INPUT", "-m time ! --monthdays 31", 0, "", "-A INPUT -m time --monthdays 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30 --datestop 2038-01-19T03:14:07", "           0    --  0.0.0.0/0            0.0.0.0/0            TIME on 1st,2nd,3rd,4th,5th,6th,7th,8th,9th,10th,11st,12nd,13rd,14th,15th,16th,17th,18th,19th,20th,21st,22nd,23rd,24th,25th,26th,27th,28th,29th,30th UTC", "           all  --  anywhere             anywhere             TIME on 1st,2nd,3rd,4th,5th,6th,7th,8th,9th,10th,11st,12nd,13rd,14th,15th,16th,17th,18th,19th,20th,21st,22nd,23rd,24th,25th,26th,27th,28th,29th,30th UTC")]
    [InlineData("4", "filter", "INPUT", "-m time --monthdays 32", 2, "iptables v1.8.9 (nf_tables): 32 is not a valid day for --monthdays", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m time --datestart 2020", 0, "", "-A INPUT -m time --datestart 2020-01-01T00:00:00 --datestop 2038-01-19T03:14:07", "           0    --  0.0.0.0/0            0.0.0.0/0            TIME starting from 2020-01-01 00:00:00 UTC", "           all  --  anywhere             anywhere             TIME starting from 2020-01-01 00:00:00 UTC")]
    [InlineData("4", "filter", "INPUT", "-m time --datestart 2020-02-31T23:59:59 --datestop 2038", 0, "", "-A INPUT -m time --datestart 2020-03-02T23:59:59 --datestop 2038-01-01T00:00:00", "           0    --  0.0.0.0/0            0.0.0.0/0            TIME starting from 2020-03-02 23:59:59 until date 2038-01-01 00:00:00 UTC", "           all  --  anywhere             anywhere             TIME starting from 2020-03-02 23:59:59 until date 2038-01-01 00:00:00 UTC")]
    [InlineData("4", "filter", "INPUT", "-m time --datestart 1969", 2, "iptables v1.8.9 (nf_tables): Invalid date \"1969\" specified. Should be YYYY[-MM[-DD[Thh[:mm[:ss]]]]]", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m time --datestop 2038-12-31", 0, "", "-A INPUT -m time --datestop 2038-12-31T00:00:00", "           0    --  0.0.0.0/0            0.0.0.0/0            TIME until date 2038-12-31 00:00:00 UTC", "           all  --  anywhere             anywhere             TIME until date 2038-12-31 00:00:00 UTC")]
    [InlineData("4", "filter", "INPUT", "-m time --datestart 2020-13", 2, "iptables v1.8.9 (nf_tables): Invalid date \"2020-13\" specified. Should be YYYY[-MM[-DD[Thh[:mm[:ss]]]]]", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m time --localtz", 0, "WARNING: --localtz is being replaced by --kerneltz, since \"local\" is ambiguous. Note the kernel timezone has caveats - see manpage for details.", "-A INPUT -m time --datestop 2038-01-19T03:14:07 --kerneltz", "           0    --  0.0.0.0/0            0.0.0.0/0            TIME", "           all  --  anywhere             anywhere             TIME")]
    [InlineData("4", "filter", "INPUT", "-m time --utc", 0, "", "-A INPUT -m time --datestop 2038-01-19T03:14:07", "           0    --  0.0.0.0/0            0.0.0.0/0            TIME UTC", "           all  --  anywhere             anywhere             TIME UTC")]
    [InlineData("4", "filter", "INPUT", "-m time --kerneltz --utc", 2, "iptables v1.8.9 (nf_tables): time: option \"--utc\" cannot be used together with \"--kerneltz\".", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m time --timestart 24:00", 2, "iptables v1.8.9 (nf_tables): invalid time \"24:00\" specified, should be hh:mm[:ss] format and within the boundaries", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m time --timestart 5", 2, "iptables v1.8.9 (nf_tables): invalid time \"5\" specified, should be hh:mm[:ss] format and within the boundaries", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m time", 0, "", "-A INPUT -m time --datestop 2038-01-19T03:14:07", "           0    --  0.0.0.0/0            0.0.0.0/0            TIME UTC", "           all  --  anywhere             anywhere             TIME UTC")]
    [InlineData("4", "filter", "INPUT", "-m time --datestart 2020-01-01T00:00:00 --datestart 2021", 2, "iptables v1.8.9 (nf_tables): time: option \"--datestart\" can only be used once.", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m time --weekdays Mon,Mon", 0, "", "-A INPUT -m time --weekdays Mon --datestop 2038-01-19T03:14:07", "           0    --  0.0.0.0/0            0.0.0.0/0            TIME on Mon UTC", "           all  --  anywhere             anywhere             TIME on Mon UTC")]
    [InlineData("4", "filter", "INPUT", "-m string --string \"te\\\"s\\\\t\" --algo bm", 0, "", "-A INPUT -m string --string \"te\\\"s\\\\t\" --algo bm", "           0    --  0.0.0.0/0            0.0.0.0/0            STRING match  \"te\\\"s\\\\t\" ALGO name bm", "           all  --  anywhere             anywhere             STRING match  \"te\\\"s\\\\t\" ALGO name bm")]
    [InlineData("4", "filter", "INPUT", "-m string --string \"\u00e9\" --algo kmp", 0, "", "-A INPUT -m string --hex-string \"|c3a9|\" --algo kmp", "           0    --  0.0.0.0/0            0.0.0.0/0            STRING match  \"|c3a9|\" ALGO name kmp", "           all  --  anywhere             anywhere             STRING match  \"|c3a9|\" ALGO name kmp")]
    [InlineData("4", "filter", "INPUT", "-m string --string \"\" --algo bm", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m string --string \"ab\\\\\" --algo bm", 0, "", "-A INPUT -m string --hex-string \"|61625c|\" --algo bm", "           0    --  0.0.0.0/0            0.0.0.0/0            STRING match  \"|61625c|\" ALGO name bm", "           all  --  anywhere             anywhere             STRING match  \"|61625c|\" ALGO name bm")]
    [InlineData("4", "filter", "INPUT", "-m string --hex-string \"|41 42|c\\\\|d|e\" --algo bm", 2, "iptables v1.8.9 (nf_tables): Odd number of hex digits", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m string --hex-string \"|4|\" --algo bm", 2, "iptables v1.8.9 (nf_tables): Invalid hex block", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m string --hex-string \"|4g|\" --algo bm", 2, "iptables v1.8.9 (nf_tables): Invalid hex char 'g'", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m string --hex-string \"|41\" --algo bm", 2, "iptables v1.8.9 (nf_tables): Invalid hex block", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m string --hex-string \"ab\\\\\" --algo bm", 2, "iptables v1.8.9 (nf_tables): Bad literal placement at end of string", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m string --hex-string \"\" --algo bm", 2, "iptables v1.8.9 (nf_tables): STRING must contain at least one char", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m string --string x --algo bm --icase", 0, "", "-A INPUT -m string --string \"x\" --algo bm --icase", "           0    --  0.0.0.0/0            0.0.0.0/0            STRING match  \"x\" ALGO name bm ICASE", "           all  --  anywhere             anywhere             STRING match  \"x\" ALGO name bm ICASE")]
    [InlineData("4", "filter", "INPUT", "-m string --string x --algo kmp --icase", 0, "", "-A INPUT -m string --string \"x\" --algo kmp --icase", "           0    --  0.0.0.0/0            0.0.0.0/0            STRING match  \"x\" ALGO name kmp ICASE", "           all  --  anywhere             anywhere             STRING match  \"x\" ALGO name kmp ICASE")]
    [InlineData("4", "filter", "INPUT", "-m string --string x --algo fsm", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m string --string x --algo abcdefghijklmnopq", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (No such file or directory): rule in chain INPUT", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m string --string x --algo bm --from 10 --to 5", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m string --string x --algo bm --from 10 --to 65535", 0, "", "-A INPUT -m string --string \"x\" --algo bm --from 10", "           0    --  0.0.0.0/0            0.0.0.0/0            STRING match  \"x\" ALGO name bm FROM 10", "           all  --  anywhere             anywhere             STRING match  \"x\" ALGO name bm FROM 10")]
    [InlineData("4", "filter", "INPUT", "-m string --string x --algo bm --from 0 --to 65536", 2, "iptables v1.8.9 (nf_tables): string: bad value for option \"--to\", or out of range (0-65535).", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m string --string x --hex-string \"|41|\" --algo bm", 2, "iptables v1.8.9 (nf_tables): string: option \"--string\" cannot be used together with \"--hex-string\".", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m string ! --hex-string \"|00ff|\" --algo bm", 0, "", "-A INPUT -m string ! --hex-string \"|00ff|\" --algo bm", "           0    --  0.0.0.0/0            0.0.0.0/0            STRING match ! \"|00ff|\" ALGO name bm", "           all  --  anywhere             anywhere             STRING match ! \"|00ff|\" ALGO name bm")]
    [InlineData("4", "filter", "INPUT", "-m string --string \"a b\" --algo bm --to 40", 0, "", "-A INPUT -m string --string \"a b\" --algo bm --to 40", "           0    --  0.0.0.0/0            0.0.0.0/0            STRING match  \"a b\" ALGO name bm TO 40", "           all  --  anywhere             anywhere             STRING match  \"a b\" ALGO name bm TO 40")]
    [InlineData("4", "filter", "INPUT", "-m set --match-set s4 src", 0, "", "-A INPUT -m set --match-set s4 src", "           0    --  0.0.0.0/0            0.0.0.0/0            match-set s4 src", "           all  --  anywhere             anywhere             match-set s4 src")]
    [InlineData("4", "filter", "INPUT", "-m set ! --match-set s4 dst,src,dst --return-nomatch ! --update-counters ! --update-subcounters ! --packets-eq 5 --bytes-gt 100", 0, "", "-A INPUT -m set ! --match-set s4 dst,src,dst --return-nomatch ! --update-counters ! --update-subcounters ! --packets-eq 5 --bytes-gt 100", "           0    --  0.0.0.0/0            0.0.0.0/0            ! match-set s4 dst,src,dst return-nomatch ! update-counters ! update-subcounters ! packets-eq 5 bytes-gt 100", "           all  --  anywhere             anywhere             ! match-set s4 dst,src,dst return-nomatch ! update-counters ! update-subcounters ! packets-eq 5 bytes-gt 100")]
    [InlineData("4", "filter", "INPUT", "-m set --match-set s4 src --packets-lt 3 ! --bytes-eq 0x10", 0, "", "-A INPUT -m set --match-set s4 src --packets-lt 3 ! --bytes-eq 16", "           0    --  0.0.0.0/0            0.0.0.0/0            match-set s4 src packets-lt 3 ! bytes-eq 16", "           all  --  anywhere             anywhere             match-set s4 src packets-lt 3 ! bytes-eq 16")]
    [InlineData("4", "filter", "INPUT", "-m set --match-set s6 src", 2, "iptables v1.8.9 (nf_tables): The protocol family of set s6 is IPv6, which is not applicable.", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m set --match-set nosuch src", 2, "iptables v1.8.9 (nf_tables): Set nosuch doesn't exist.", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m set --match-set s4 foo", 2, "iptables v1.8.9 (nf_tables): You must spefify (the comma separated list of) 'src' or 'dst'.", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m set --match-set s4 src,src,src,src,src,src,src", 2, "iptables v1.8.9 (nf_tables): Can't be more src/dst options than 6.", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m set --match-set s4 src --match-set s4 dst", 2, "iptables v1.8.9 (nf_tables): --match-set can be specified only once", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m set --match-set s4 src ! --return-nomatch", 2, "iptables v1.8.9 (nf_tables): --return-nomatch flag cannot be inverted", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m set --match-set s4 src ! --packets-lt 3", 2, "iptables v1.8.9 (nf_tables): --packets-lt option cannot be inverted", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m set --match-set s4 src --packets-lt 3 --packets-gt 4", 2, "iptables v1.8.9 (nf_tables): only one of the --packets-[eq|lt|gt] is allowed", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m set --match-set s4 src --bytes-eq x", 2, "iptables v1.8.9 (nf_tables): Cannot parse x as a counter value", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m set --set s4 src", 0, "--set option deprecated, please use --match-set", "-A INPUT -m set --match-set s4 src", "           0    --  0.0.0.0/0            0.0.0.0/0            match-set s4 src", "           all  --  anywhere             anywhere             match-set s4 src")]
    [InlineData("4", "filter", "INPUT", "-m set --match-set s4 src --update-counters", 0, "", "-A INPUT -m set --match-set s4 src", "           0    --  0.0.0.0/0            0.0.0.0/0            match-set s4 src", "           all  --  anywhere             anywhere             match-set s4 src")]
    [InlineData("4", "filter", "INPUT", "-m set --match-set l src", 0, "", "-A INPUT -m set --match-set l src", "           0    --  0.0.0.0/0            0.0.0.0/0            match-set l src", "           all  --  anywhere             anywhere             match-set l src")]
    [InlineData("4", "filter", "INPUT", "-m set", 2, "iptables v1.8.9 (nf_tables): You must specify `--match-set' with proper arguments", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m set --match-set abcdefghijabcdefghijabcdefghijab src", 2, "iptables v1.8.9 (nf_tables): setname `abcdefghijabcdefghijabcdefghijab' too long, max 31 characters.", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m set --match-set s4 srcx", 0, "", "-A INPUT -m set --match-set s4 src", "           0    --  0.0.0.0/0            0.0.0.0/0            match-set s4 src", "           all  --  anywhere             anywhere             match-set s4 src")]
    [InlineData("4", "filter", "INPUT", "-m nfacct --nfacct-name acct1", 0, "", "-A INPUT -m nfacct --nfacct-name  acct1", "           0    --  0.0.0.0/0            0.0.0.0/0            nfacct-name  acct1", "           all  --  anywhere             anywhere             nfacct-name  acct1")]
    [InlineData("4", "filter", "INPUT", "-m nfacct --nfacct-name \"a b\"", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (No such file or directory): rule in chain INPUT", "", "", "")]
    [InlineData("4", "filter", "INPUT", "-m nfacct --nfacct-name \"\"", 2, "iptables v1.8.9 (nf_tables): Argument must have a minimum length of 1 characters", "", "", "")]
    [InlineData("4", "filter", "OUTPUT", "-m owner --uid-owner root", 0, "", "-A OUTPUT -m owner --uid-owner 0", "           0    --  0.0.0.0/0            0.0.0.0/0            owner UID match 0", "           all  --  anywhere             anywhere             owner UID match root")]
    [InlineData("4", "filter", "OUTPUT", "-m owner --uid-owner 0-10", 0, "", "-A OUTPUT -m owner --uid-owner 0-10", "           0    --  0.0.0.0/0            0.0.0.0/0            owner UID match 0-10", "           all  --  anywhere             anywhere             owner UID match 0-10")]
    [InlineData("4", "filter", "OUTPUT", "-m owner --uid-owner 5:3", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain OUTPUT", "", "", "")]
    [InlineData("4", "filter", "OUTPUT", "-m owner --uid-owner 1 --uid-owner 2", 2, "iptables v1.8.9 (nf_tables): owner: option \"--uid-owner\" can only be used once.", "", "", "")]
    [InlineData("4", "filter", "OUTPUT", "-m owner ! --gid-owner 65534", 0, "", "-A OUTPUT -m owner ! --gid-owner 65534", "           0    --  0.0.0.0/0            0.0.0.0/0            ! owner GID match 65534", "           all  --  anywhere             anywhere             ! owner GID match nogroup")]
    [InlineData("4", "filter", "OUTPUT", "-m owner --uid-owner 4294967295", 2, "iptables v1.8.9 (nf_tables): owner: Bad value for \"--uid-owner\" option: \"4294967295\"", "", "", "")]
    [InlineData("4", "filter", "OUTPUT", "-m owner --uid-owner 4294967294", 0, "", "-A OUTPUT -m owner --uid-owner 4294967294", "           0    --  0.0.0.0/0            0.0.0.0/0            owner UID match 4294967294", "           all  --  anywhere             anywhere             owner UID match 4294967294")]
    [InlineData("4", "filter", "OUTPUT", "-m owner --uid-owner nosuchuser", 2, "iptables v1.8.9 (nf_tables): owner: Bad value for \"--uid-owner\" option: \"nosuchuser\"", "", "", "")]
    [InlineData("4", "filter", "OUTPUT", "-m owner --uid-owner 3-", 2, "iptables v1.8.9 (nf_tables): owner: Bad value for \"--uid-owner\" option: \"3-\"", "", "", "")]
    [InlineData("4", "filter", "OUTPUT", "-m owner --uid-owner 0x10", 0, "", "-A OUTPUT -m owner --uid-owner 16", "           0    --  0.0.0.0/0            0.0.0.0/0            owner UID match 16", "           all  --  anywhere             anywhere             owner UID match 16")]
    [InlineData("4", "filter", "OUTPUT", "-m owner ! --socket-exists --gid-owner daemon --suppl-groups", 0, "", "-A OUTPUT -m owner ! --socket-exists --gid-owner 1 --suppl-groups", "           0    --  0.0.0.0/0            0.0.0.0/0            ! owner socket exists owner GID match 1 incl. suppl. groups", "           all  --  anywhere             anywhere             ! owner socket exists owner GID match daemon incl. suppl. groups")]
    [InlineData("4", "filter", "OUTPUT", "-m owner --suppl-groups", 2, "iptables v1.8.9 (nf_tables): owner: Bad value for \"--suppl-groups\" option: \"you need to use --gid-owner first\"", "", "", "")]
    [InlineData("4", "filter", "OUTPUT", "-m owner", 2, "iptables v1.8.9 (nf_tables): owner: At least one of --uid-owner, --gid-owner or --socket-exists is required", "", "", "")]
    [InlineData("4", "filter", "OUTPUT", "-m owner --uid-owner 1 ! --suppl-groups", 2, "iptables v1.8.9 (nf_tables): owner: option \"--suppl-groups\" cannot be inverted.", "", "", "")]
    [InlineData("4", "filter", "OUTPUT", "-m owner --uid-owner 1 --suppl-groups", 2, "iptables v1.8.9 (nf_tables): owner: Bad value for \"--suppl-groups\" option: \"you need to use --gid-owner first\"", "", "", "")]
    [InlineData("4", "filter", "OUTPUT", "-m owner --gid-owner 5-5", 0, "", "-A OUTPUT -m owner --gid-owner 5", "           0    --  0.0.0.0/0            0.0.0.0/0            owner GID match 5", "           all  --  anywhere             anywhere             owner GID match tty")]
    [InlineData("4", "filter", "OUTPUT", "-m owner --uid-owner 1", 0, "", "-A OUTPUT -m owner --uid-owner 1", "           0    --  0.0.0.0/0            0.0.0.0/0            owner UID match 1", "           all  --  anywhere             anywhere             owner UID match daemon")]
    [InlineData("4", "filter", "INPUT", "-m owner --uid-owner 0", 4, "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT", "", "", "")]
    [InlineData("6", "filter", "OUTPUT", "-m owner --gid-owner 0-10 --suppl-groups", 0, "", "-A OUTPUT -m owner --gid-owner 0-10 --suppl-groups", "           0    --  ::/0                 ::/0                 owner GID match 0-10 incl. suppl. groups", "           all  --  anywhere             anywhere             owner GID match 0-10 incl. suppl. groups")]
    [InlineData("6", "filter", "INPUT", "-m set --match-set s6 dst,dst", 0, "", "-A INPUT -m set --match-set s6 dst,dst", "           0    --  ::/0                 ::/0                 match-set s6 dst,dst", "           all  --  anywhere             anywhere             match-set s6 dst,dst")]
    [InlineData("6", "filter", "INPUT", "-m set --match-set s4 dst", 2, "ip6tables v1.8.9 (nf_tables): The protocol family of set s4 is IPv4, which is not applicable.", "", "", "")]
    public void Rule_matches_real_iptables(string fam, string table, string chain, string args, int rc, string err, string saved, string listNumeric, string list) =>
        Check(fam, table, chain, args, rc, err, saved, listNumeric, list);
}
