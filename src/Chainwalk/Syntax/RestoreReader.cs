using System.Globalization;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Syntax;

/// <summary>Options of iptables-restore.</summary>
public sealed class RestoreOptions
{
    /// <summary>-c: take the counters in the file.</summary>
    public bool Counters { get; init; }

    /// <summary>-n: do not flush the tables named in the file.</summary>
    public bool NoFlush { get; init; }

    /// <summary>-T NAME: only this table is restored.</summary>
    public string? OnlyTable { get; init; }

    /// <summary>--test: parse and check only.</summary>
    public bool Test { get; init; }

    /// <summary>
    /// Drop the [packets:bytes] of rule lines (policy counters stay): ip6tables-nft-restore 1.8.9 -c does not pass
    /// rule counters to the kernel. Set by the ip6tables-restore front end, not when Chainwalk reloads its own state.
    /// </summary>
    public bool IgnoreRuleCounters { get; init; }
}

/// <summary>
/// Reads iptables-restore input (xtables-restore.c): "*table", ":chain policy [p:b]", rule lines run
/// as iptables commands with "-t table", and COMMIT. The whole input is applied to a copy of the
/// ruleset; on any error the copy is dropped, so every table stays as it was.
/// </summary>
public sealed class RestoreReader
{
    private readonly IpFamily _family;
    private readonly string _program;
    private readonly NameDb _names;

    /// <summary>
    /// Marks each rule read from exactly its own iptables-save line (<see cref="Rule.SaveFormVerified"/>), so that
    /// storing it again needs no second parse. Used when the host store reads its state and for restore input.
    /// </summary>
    public bool VerifySaveForms { get; init; }

    /// <summary>
    /// Plain rule lines go through <see cref="CommandLineParser.TryParsePlainRule"/> (on by default); tests turn it off
    /// to compare with the getopt parser.
    /// </summary>
    internal bool PlainRulePath { get; init; } = true;

    /// <summary>What the lines read so far printed on stderr (extension warnings), in order.</summary>
    public List<string> Warnings { get; } = new();

    public RestoreReader(IpFamily family, string program, NameDb? names = null)
    {
        _family = family;
        _program = program;
        _names = names ?? NameDb.System;
    }

    /// <summary>
    /// After a failed <see cref="Apply"/>: the ruleset as of the last successful COMMIT (iptables-nft-restore
    /// commits table by table), or null when nothing was committed.
    /// </summary>
    public Ruleset? Committed { get; private set; }

    /// <summary>Applies <paramref name="text"/> to a clone of <paramref name="ruleset"/> and returns the new ruleset.</summary>
    public Ruleset Apply(Ruleset ruleset, string text, RestoreOptions options, StringBuilder? output = null)
    {
        var lines = new Lines(text);
        return Apply(ruleset, ref lines, options, output);
    }

    /// <summary>
    /// <see cref="Apply(Ruleset, string, RestoreOptions, StringBuilder?)"/> of UTF-8 input (no byte order mark; see
    /// <see cref="Utf8Body"/>), decoded a line at a time into one reused buffer instead of into one string of the whole
    /// input: the same text, since a line break is never part of a UTF-8 sequence (an invalid one becomes U+FFFD either
    /// way, as Encoding.UTF8 decodes it).
    /// </summary>
    public Ruleset ApplyUtf8(Ruleset ruleset, ReadOnlySpan<byte> utf8, RestoreOptions options, StringBuilder? output = null)
    {
        var lines = new Lines(utf8);
        return Apply(ruleset, ref lines, options, output);
    }

    /// <summary>
    /// Where the text of a file read as File.ReadAllText reads it (UTF-8, a UTF-8 byte order mark skipped) starts in its
    /// bytes, or -1 when it starts with another byte order mark (UTF-16/32: read it as text instead).
    /// </summary>
    public static int Utf8Body(ReadOnlySpan<byte> file)
    {
        if (file.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) return 3;
        if (file.StartsWith((ReadOnlySpan<byte>)[0xFE, 0xFF]) || file.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xFE])
            || file.StartsWith((ReadOnlySpan<byte>)[0, 0, 0xFE, 0xFF])) return -1;
        return 0;
    }

    /// <summary>
    /// The input's lines: the text split at '\n' (a final newline ends the last line), read in place from a string, or
    /// from UTF-8 bytes a line at a time into a reused buffer.
    /// </summary>
    private ref struct Lines
    {
        private readonly ReadOnlySpan<char> _text;
        private readonly ReadOnlySpan<byte> _utf8;
        private readonly bool _bytes;
        private readonly bool _lastHasNewline;
        private readonly int _end;
        private int _pos;
        private bool _more;
        private char[]? _chars;

        public Lines(string text)
        {
            _text = text;
            _lastHasNewline = text.EndsWith('\n');
            _end = _lastHasNewline ? text.Length - 1 : text.Length;
            _more = text.Length > 0;
        }

        public Lines(ReadOnlySpan<byte> utf8)
        {
            _utf8 = utf8;
            _bytes = true;
            _lastHasNewline = utf8.Length > 0 && utf8[^1] == (byte)'\n';
            _end = _lastHasNewline ? utf8.Length - 1 : utf8.Length;
            _more = utf8.Length > 0;
        }

        /// <summary>The next line (valid until the next call) and whether a newline followed it.</summary>
        public bool Next(out ReadOnlySpan<char> line, out bool hasNewline)
        {
            if (!_more)
            {
                line = default;
                hasNewline = false;
                return false;
            }
            int nl;
            if (!_bytes)
            {
                nl = _text[_pos.._end].IndexOf('\n');
                line = _text.Slice(_pos, (nl < 0 ? _end - _pos : nl));
            }
            else
            {
                nl = _utf8[_pos.._end].IndexOf((byte)'\n');
                line = Decode(_utf8.Slice(_pos, (nl < 0 ? _end - _pos : nl)));
            }
            hasNewline = nl >= 0 || _lastHasNewline;
            _more = nl >= 0;
            _pos += nl + 1;
            return true;
        }

        private ReadOnlySpan<char> Decode(ReadOnlySpan<byte> bytes)
        {
            if (_chars is null || _chars.Length < bytes.Length + 1) _chars = new char[Math.Max(256, (bytes.Length + 1) * 2)];
            if (System.Text.Ascii.ToUtf16(bytes, _chars, out int n) == System.Buffers.OperationStatus.Done) return _chars.AsSpan(0, n);
            n = Encoding.UTF8.GetChars(bytes, _chars);
            return _chars.AsSpan(0, n);
        }
    }

    private Ruleset Apply(Ruleset ruleset, ref Lines lines, RestoreOptions options, StringBuilder? output)
    {
        Committed = null;
        Ruleset work = ruleset.Clone();
        // Tables of `work` this Apply may change in place: those it cloned or created since the last COMMIT. A
        // committed table is shared with the Committed snapshot, so a later block that changes it (--noflush)
        // clones it first; that keeps the snapshot at each COMMIT without copying the whole ruleset there.
        var owned = new HashSet<Table>(work.Tables, ReferenceEqualityComparer.Instance);
        Table? current = null;
        bool inTable = false;
        bool tableExisted = true, tableTouched = false;
        bool skipTable = false;
        int lineNo = 0;
        while (lines.Next(out ReadOnlySpan<char> line, out bool hasNewline))
        {
            lineNo++;
            try
            {
                if (line.Length == 0) continue;
                if (line[0] == '#') continue;
                // 1.8.9 takes a COMMIT on the last line even without its newline.
                if (inTable && line.SequenceEqual("COMMIT"))
                {
                    inTable = false;
                    if (!skipTable && current is not null) ValidateAtCommit(current);
                    // A table block that declares no chain and has no rule does not create the table.
                    if (!skipTable && current is not null && !tableExisted && !tableTouched) work.Remove(current.Name);
                    current = null;
                    Committed = work.ShallowCopy();
                    owned.Clear();
                    continue;
                }
                if (line[0] == '*' && !inTable)
                {
                    string raw = line.ToString();
                    string[] f = raw[1..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                    if (f.Length == 0) throw XtablesException.Param($"{_program}: line {lineNo} table name invalid");
                    TableInfo? info = TableInfo.Find(f[0]);
                    if (info is null) throw XtablesException.Param($"{_program}: line {lineNo} table name '{f[0]}' invalid");
                    inTable = true;
                    _sharedJumps.Clear();
                    tableExisted = work.Find(info.Name) is not null;
                    _jumps.Clear();
                    tableTouched = false;
                    skipTable = options.OnlyTable is not null && options.OnlyTable != f[0];
                    if (skipTable)
                    {
                        current = new Table(info, _family);
                        continue;
                    }
                    if (options.NoFlush && work.Find(info.Name) is { } kept)
                    {
                        current = kept;
                        if (!owned.Contains(kept))
                        {
                            current = kept.Clone();
                            work.Replace(current);
                        }
                    }
                    else
                    {
                        current = new Table(info, _family);
                        work.Replace(current);
                    }
                    owned.Add(current);
                    continue;
                }
                if (line[0] == ':' && inTable)
                {
                    string raw = line.ToString();
                    tableTouched = true;
                    string[] f = raw[1..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                    if (f.Length == 0) throw XtablesException.Param($"{_program}: line {lineNo} chain name invalid");
                    string chain = f[0];
                    if (chain.Length >= 29) throw XtablesException.Param($"Invalid chain name `{chain}' (28 chars max)");
                    if (f.Length < 2) throw XtablesException.Param($"{_program}: line {lineNo} policy invalid");
                    string policy = f[1];
                    if (skipTable) continue;
                    Chain? existing = current!.Find(chain);
                    if (existing is { IsBuiltin: true } && policy is not (Verdicts.Accept or Verdicts.Drop or "-"))
                    {
                        throw XtablesException.Other($"{_family.Tool()}: Bad policy name.");
                    }
                    if (existing is { IsBuiltin: true })
                    {
                        Counters counters = default;
                        if (options.Counters)
                        {
                            if (f.Length < 3 || !TryParseCounters(f[2], out counters))
                                throw XtablesException.Param($"invalid policy counters for chain '{chain}'");
                        }
                        if (policy is Verdicts.Accept or Verdicts.Drop)
                        {
                            existing.Policy = policy;
                            existing.Counters = counters;
                        }
                    }
                    else if (existing is not null)
                    {
                        RulesetEditor.ClearRules(current, existing);
                        current.Checked = null;
                    }
                    else
                    {
                        current.AddUserChain(chain);
                    }
                    continue;
                }
                if (!inTable)
                {
                    throw new XtablesException(XtablesExit.OtherProblem, $"{_program}: line {lineNo} failed") { Verbatim = true };
                }
                if (skipTable) continue;
                tableTouched = true;
                RunRuleLine(work, current!, line, hasNewline, lineNo, options, output);
            }
            catch (XtablesException ex)
            {
                ex.Line ??= lineNo;
                throw;
            }
        }
        if (inTable)
        {
            throw new XtablesException(XtablesExit.OtherProblem, $"{_program}: COMMIT expected at line {lineNo + 1}") { Line = -1, Verbatim = true };
        }
        return work;
    }

    private void RunRuleLine(Ruleset work, Table current, ReadOnlySpan<char> raw, bool hasNewline, int lineNo, RestoreOptions options, StringBuilder? output)
    {
        // The line's newline matters only inside an unclosed quote (it becomes part of the parameter).
        bool quoted = raw.Contains('"'); // one scan: the newline below and the plain path both ask
        ReadOnlySpan<char> rest = hasNewline && quoted ? string.Concat(raw, "\n") : raw;
        string? pcnt = null, bcnt = null;
        if (rest.StartsWith('['))
        {
            int close = rest.IndexOf(']');
            if (close < 0) throw XtablesException.Param($"Bad line {lineNo}: need ]\n");
            ReadOnlySpan<char> inner = rest[1..close];
            int colon = inner.IndexOf(':');
            if (colon < 0) throw XtablesException.Param($"Bad line {lineNo}: need :\n");
            pcnt = inner[..colon].ToString();
            bcnt = inner[(colon + 1)..].ToString();
            rest = rest[(close + 1)..];
        }
        bool withCounters = options.Counters && !options.IgnoreRuleCounters && pcnt is not null && bcnt is not null;
        CommandLineParser parser = _parser ??= new CommandLineParser(_family, _program, _names, restore: true);
        parser.Line = lineNo;
        ParsedCommand? cmd = null;
        if (PlainRulePath && !(quoted && rest.Contains('"')) && (!withCounters || (IsPlainCount(pcnt!) && IsPlainCount(bcnt!))))
        {
            (ulong, ulong)? counters = withCounters ? (ulong.Parse(pcnt!, CultureInfo.InvariantCulture), ulong.Parse(bcnt!, CultureInfo.InvariantCulture)) : null;
            cmd = parser.TryParsePlainRule(current.Name, rest, counters, _intern);
            _lastPlain = cmd;
        }
        if (cmd is null)
        {
            var argv = new List<string>(24);
            argv.Add(_program);
            argv.Add("-t");
            argv.Add(current.Name);
            if (withCounters)
            {
                argv.Add("--set-counters");
                argv.Add(pcnt!);
                argv.Add(bcnt!);
            }
            Tokenize(rest, lineNo, argv);
            try
            {
                cmd = parser.Parse(argv.ToArray());
            }
            catch (XtablesException ex) when (ex.Preceding is { } pre)
            {
                // The failing line's own warnings were printed after those of the earlier lines.
                Warnings.AddRange(pre);
                ex.Preceding = null;
                throw;
            }
        }
        if (cmd.Warnings.Count > 0) Warnings.AddRange(cmd.Warnings);
        if (cmd.SkipLine) return;
        ShareParts(current, cmd.Rules, matches: !ReferenceEquals(cmd, _lastPlain));
        // One executor per ruleset being built (it keeps nothing between commands but its output, taken below).
        if (_exec is null || !ReferenceEquals(_exec.Ruleset, work)) _exec = new CommandExecutor(work, _names) { DeferValidation = true };
        CommandExecutor exec = _exec;
        // A plain line is one -A of one rule into this block's table (TryParsePlainRule was given its name).
        if (ReferenceEquals(cmd, _lastPlain) && cmd.Command == CommandKind.Append && cmd.Rules.Count == 1 && ReferenceEquals(cmd.Table, current.Name)) exec.AppendToBlock(current, cmd);
        else exec.Execute(cmd);
        if (VerifySaveForms && cmd.Command == CommandKind.Append && cmd.Rules.Count == 1 && ReferenceEquals(_names, NameDb.System))
        {
            MarkFixedPoint(cmd.Rules[0], cmd.Chain!, pcnt is null ? rest : rest.TrimStart(' '));
        }
        string? op = cmd.Command switch
        {
            CommandKind.Append => "RULE_APPEND",
            CommandKind.Insert => "RULE_INSERT",
            CommandKind.Replace => "RULE_REPLACE",
            _ => null,
        };
        if (op is not null)
        {
            foreach (Rule r in cmd.Rules)
            {
                _lineRules.Add(r);
                _lineNumbers.Add((lineNo << 2) | (int)(cmd.Command == CommandKind.Append ? 0 : cmd.Command == CommandKind.Insert ? 1 : 2));
            }
            foreach (Rule r in cmd.Rules)
            {
                if (r.Target is { IsChainJump: true } t) _jumps.Add(new JumpLine(lineNo, op, cmd.Chain!, t.Name));
            }
        }
        if (exec.HasOutput)
        {
            output?.Append(exec.Output);
            exec.Output.Clear();
        }
    }

    /// <summary>The command the plain path returned last (its tcp/udp matches are left unshared: keying them would cost the fast path more than it saves).</summary>
    private ParsedCommand? _lastPlain;

    /// <summary>
    /// Rules of this input whose matches save to the same text share one <see cref="MatchUse"/> when the extension's
    /// data is configuration only (<see cref="Extensions.XtExtension.SharesEqualData"/>): the comments, marks and
    /// ctstates a kube-proxy rule set repeats are then held once. The key is the extension, revision, given options and
    /// save text, so shared uses are indistinguishable from separate ones.
    /// </summary>
    private void ShareParts(Table table, List<Rule> rules, bool matches)
    {
        foreach (Rule r in rules)
        {
            ref MatchList uses = ref r.Matches;
            Span<MatchUse> fresh = uses.Unshared; // made by the parser for this rule alone
            bool allShared = matches && fresh.Length > 0;
            for (int i = 0; matches && i < fresh.Length; i++)
            {
                MatchUse m = fresh[i];
                if (!m.Extension.SharesEqualData) { allShared = false; continue; }
                StringBuilder key = _shareKey.Clear();
                key.Append(m.Extension.Name).Append('/').Append(m.Data.Revision).Append('/').Append(m.Data.Given).Append('/').Append((int)r.Family);
                m.Extension.Save(key, m.Data, r.Family);
                string k = key.ToString();
                if (_sharedMatches.TryGetValue(k, out MatchUse? shared)) fresh[i] = shared;
                else
                {
                    // A comment held once from here on: in its compact form (its bytes in the data object).
                    if (m.Data is Extensions.Matches.CommentData text && Extensions.Matches.CommentData.Compact(text) is var compact && !ReferenceEquals(compact, text))
                        fresh[i] = m = new MatchUse(m.Extension, compact);
                    _sharedMatches.Add(k, m);
                }
            }
            // Rules whose matches are all shared objects in the same order share one array of them.
            if (allShared)
            {
                ref MatchUse[]? same = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_sharedMatchArrays, uses.Array, out bool known);
                if (known) uses.Share(same!);
                else same = uses.Array;
            }
            // A plain -j/-g to a user chain: one object per chain and kind in this table block. Never across tables:
            // the compiled form resolves each jump object to one chain (CompiledRules.JumpTarget), and two tables
            // may have chains of the same name.
            if (r.Target is { IsChainJump: true } t)
            {
                ref TargetUse? same = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_sharedJumps, (t.Name, t.Goto), out bool exists);
                if (exists) r.Target = same;
                else if (table.Find(t.Name) is { } chain && !ReferenceEquals(chain.Name, t.Name))
                {
                    // The name held once: the chain's own string (the jump's was read from this line).
                    r.Target = same = TargetUse.Jump(chain.Name, t.Goto);
                }
                else same = t;
            }
        }
    }

    /// <summary>The jump objects of the current table block (cleared at each <c>*table</c> line).</summary>
    private readonly Dictionary<(string Name, bool Goto), TargetUse> _sharedJumps = new();

    private readonly Dictionary<string, MatchUse> _sharedMatches = new(StringComparer.Ordinal);

    /// <summary>The match arrays of this input made only of shared match objects, by their elements (see ShareParts).</summary>
    private readonly Dictionary<MatchUse[], MatchUse[]> _sharedMatchArrays = new(SameElements.Instance);

    private sealed class SameElements : IEqualityComparer<MatchUse[]>
    {
        public static readonly SameElements Instance = new();

        public bool Equals(MatchUse[]? x, MatchUse[]? y)
        {
            if (x is null || y is null || x.Length != y.Length) return ReferenceEquals(x, y);
            for (int i = 0; i < x.Length; i++)
                if (!ReferenceEquals(x[i], y[i])) return false;
            return true;
        }

        public int GetHashCode(MatchUse[] a)
        {
            var h = new HashCode();
            foreach (MatchUse m in a) h.Add(System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(m));
            return h.ToHashCode();
        }
    }
    private readonly StringBuilder _shareKey = new();

    private CommandLineParser? _parser;
    private CommandExecutor? _exec;

    /// <summary>A counter the fast path takes as it is: decimal digits that fit (sscanf's other forms go through getopt).</summary>
    private static bool IsPlainCount(string s) => s.Length is > 0 and <= 19 && s.AsSpan().IndexOfAnyExceptInRange('0', '9') < 0;

    /// <summary>
    /// Names repeated on many lines (chains, interfaces, jump targets) are kept once: a ruleset of 100k rules
    /// holds a few distinct strings, not one per rule.
    /// </summary>
    private readonly Func<ReadOnlySpan<char>, string> _intern = CreateInterner();

    private static Func<ReadOnlySpan<char>, string> CreateInterner()
    {
        var pool = new HashSet<string>(StringComparer.Ordinal);
        HashSet<string>.AlternateLookup<ReadOnlySpan<char>> lookup = pool.GetAlternateLookup<ReadOnlySpan<char>>();
        return span =>
        {
            if (lookup.TryGetValue(span, out string? s)) return s;
            s = span.ToString();
            if (pool.Count < 4096) pool.Add(s);
            return s;
        };
    }

    /// <summary>Sets <see cref="Rule.SaveFormVerified"/> when <paramref name="line"/> is exactly the rule's save line.</summary>
    private static void MarkFixedPoint(Rule rule, string chain, ReadOnlySpan<char> line)
    {
        if (SaveFormCheck.ReloadsExactly(rule, chain)) return; // proven without the text; nothing to remember
        if (line.EndsWith('\n')) line = line[..^1];
        if (!line.StartsWith("-A ") || !line[3..].StartsWith(chain) || line.IndexOf('\n') >= 0) return;
        string body = RuleWriter.SaveBody(rule);
        rule.SaveFormVerified = line[(3 + chain.Length)..].SequenceEqual(body);
    }

    /// <summary>A jump added by a rule line of the table block being restored.</summary>
    private sealed record JumpLine(int Line, string Operation, string Chain, string Target);

    private readonly List<JumpLine> _jumps = new();

    /// <summary>The restore line and operation that added each rule of the block, for the kernel's error report.</summary>
    /// <remarks>
    /// Lists in file order (the rule, and its line number times four plus 0/1/2 for append/insert/replace); looked up
    /// (through a dictionary built then) only when the kernel refuses rules.
    /// </remarks>
    private readonly List<Rule> _lineRules = new();
    private readonly List<int> _lineNumbers = new();

    private static readonly string[] LineOperations = ["RULE_APPEND", "RULE_INSERT", "RULE_REPLACE"];

    /// <summary>
    /// The table checks at COMMIT. A jump loop reachable from a built-in chain is blamed, as the kernel does, on
    /// the first rule line (in file order) whose jump closes such a loop or makes one reachable.
    /// </summary>
    private void ValidateAtCommit(Table table)
    {
        // The missing-jump-target check comes first (the parser's "Chain 'X' does not exist", deferred to COMMIT).
        foreach (Chain c in table.Chains)
        {
            foreach (Rule r in c.Rules) RulesetEditor.CheckJumpTarget(table, r);
        }
        // nf_tables reports every refused rule of the batch, each with its own line and chain.
        RulesetEditor.TableCheckResult check = RulesetEditor.CheckTable(table);
        var refused = new List<(int Line, string Text)>();
        Dictionary<Rule, (int Line, string Op)>? lines = check.Problems.Count == 0 ? null : new(ReferenceEqualityComparer.Instance);
        if (lines is not null)
        {
            for (int i = 0; i < _lineRules.Count; i++) lines[_lineRules[i]] = (_lineNumbers[i] >> 2, LineOperations[_lineNumbers[i] & 3]);
        }
        foreach (var (chain, rule, problem) in check.Problems)
        {
            if (!lines!.TryGetValue(rule, out (int Line, string Op) at)) continue;
            refused.Add((at.Line, $"line {at.Line}: {at.Op} failed ({problem}): rule in chain {chain.Name}"));
        }
        if (refused.Count > 0)
        {
            string text = string.Concat(refused.OrderBy(x => x.Line).Select(x => "\n" + x.Text));
            throw new XtablesException(XtablesExit.ResourceProblem, text) { Line = -1 };
        }
        try
        {
            // What RulesetEditor.Validate would throw, from the same pass (the jump targets were checked above).
            RulesetEditor.ThrowIfInvalid(check, "RULE_APPEND", table.Name);
            // Checked whole and valid: later single-rule changes check only what they touch.
            RulesetEditor.RememberChecked(table, check);
        }
        catch (XtablesException ex) when (ex.Exit == XtablesExit.ResourceProblem && ex.Message.Contains("(Too many links)", StringComparison.Ordinal))
        {
            // The jumps that were there before this block's rule lines, then this block's, one by one.
            var edges = new List<(string From, string To)>();
            foreach (Chain c in table.Chains)
            {
                foreach (Rule r in c.Rules)
                {
                    if (r.Target is { IsChainJump: true } t) edges.Add((c.Name, t.Name));
                }
            }
            foreach (JumpLine j in _jumps) edges.Remove((j.Chain, j.Target));
            foreach (JumpLine j in _jumps)
            {
                edges.Add((j.Chain, j.Target));
                if (HasReachableLoop(table, edges))
                {
                    throw new XtablesException(XtablesExit.ResourceProblem, $" {j.Operation} failed (Too many links): rule in chain {j.Chain}") { Line = j.Line };
                }
            }
            throw;
        }
    }

    private static bool HasReachableLoop(Table table, List<(string From, string To)> edges)
    {
        var next = edges.GroupBy(e => e.From, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Select(e => e.To).ToList(), StringComparer.Ordinal);
        var state = new Dictionary<string, int>(StringComparer.Ordinal);
        bool Visit(string n)
        {
            if (state.TryGetValue(n, out int s)) return s == 1;
            state[n] = 1;
            foreach (string m in next.TryGetValue(n, out List<string>? l) ? l : []) if (Visit(m)) return true;
            state[n] = 2;
            return false;
        }
        return table.BuiltinChains.Any(b => Visit(b.Name));
    }

    /// <summary>add_param_to_argv: splits on blanks, honouring double quotes and backslash escapes inside them.</summary>
    public List<string> Tokenize(string line, int lineNo) => Tokenize(line.AsSpan(), lineNo, new List<string>());

    private List<string> Tokenize(ReadOnlySpan<char> line, int lineNo, List<string> args)
    {
        if (!line.Contains('"'))
        {
            // Without quotes the parameters are the runs of non-blanks (what the loop below finds, faster).
            ReadOnlySpan<char> rest = line;
            while (true)
            {
                int start = rest.IndexOfAnyExcept(' ', '\t', '\n');
                if (start < 0) break;
                rest = rest[start..];
                int end = rest.IndexOfAny(' ', '\t', '\n');
                ReadOnlySpan<char> word = end < 0 ? rest : rest[..end];
                if (word.Length >= 1024) throw XtablesException.Param("Parameter too long!");
                AddParam(args, word.ToString(), lineNo);
                if (end < 0) break;
                rest = rest[end..];
            }
            return args;
        }
        var buf = new StringBuilder();
        bool quoteOpen = false, escaped = false;
        foreach (char ch in line)
        {
            if (quoteOpen)
            {
                if (escaped)
                {
                    buf.Append(ch);
                    escaped = false;
                    continue;
                }
                if (ch == '\\')
                {
                    escaped = true;
                    continue;
                }
                if (ch != '"')
                {
                    buf.Append(ch);
                    continue;
                }
                quoteOpen = false;
            }
            else if (ch == '"')
            {
                quoteOpen = true;
                continue;
            }
            if (ch == '"')
            {
                // closing quote: ends the parameter (even an empty one)
            }
            else if (ch is ' ' or '\t' or '\n')
            {
                if (buf.Length == 0) continue;
            }
            else
            {
                buf.Append(ch);
                if (buf.Length >= 1024) throw XtablesException.Param("Parameter too long!");
                continue;
            }
            AddParam(args, buf.ToString(), lineNo);
            buf.Clear();
        }
        if (buf.Length > 0) AddParam(args, buf.ToString(), lineNo);
        return args;
    }

    private void AddParam(List<string> args, string p, int lineNo)
    {
        bool shortWithT = p.Length > 0 && p[0] == '-' && (p.Length < 2 || p[1] != '-') && p.Contains('t', StringComparison.Ordinal);
        bool longTable = p.StartsWith("--t", StringComparison.Ordinal) && "--table".StartsWith(p, StringComparison.Ordinal);
        if (shortWithT || longTable)
        {
            throw XtablesException.Param($"The -t option cannot be used in {_program}.\n");
        }
        args.Add(p);
    }

    private static bool TryParseCounters(string text, out Counters counters)
    {
        counters = default;
        if (text.Length < 5 || text[0] != '[' || text[^1] != ']') return false;
        string[] parts = text[1..^1].Split(':');
        if (parts.Length != 2) return false;
        if (!ulong.TryParse(parts[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ulong p)) return false;
        if (!ulong.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ulong b)) return false;
        counters = new Counters(p, b);
        return true;
    }
}
