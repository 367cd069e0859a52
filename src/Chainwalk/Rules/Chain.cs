namespace Chainwalk.Rules;

/// <summary>A chain: built-in (with a policy and policy counters) or user-defined.</summary>
public sealed class Chain
{
    public Chain(string name, bool builtin)
    {
        Name = name;
        _flags = builtin ? BuiltinFlag : (byte)0;
        Policy = builtin ? Verdicts.Accept : null;
    }

    public string Name
    {
        get => _name;
        set
        {
            _name = value;
            Changed();
        }
    }

    private string _name = "";

    /// <summary>
    /// The table holding this chain (set when a table takes it in), whose rule set's generation every change of the chain
    /// moves (<see cref="RulesGeneration"/>); null while no table holds it. Held in <see cref="_extras"/>'s field (the
    /// table itself, or in the extras once made): no field of its own, 8 bytes a chain (a kube-proxy set has a chain per
    /// endpoint).
    /// </summary>
    internal Table? Owner
    {
        get => _extras is { } x ? (x.GetType() == typeof(ChainExtras) ? System.Runtime.CompilerServices.Unsafe.As<ChainExtras>(x).Owner : System.Runtime.CompilerServices.Unsafe.As<Table>(x)) : null;
        set
        {
            if (ExtrasOrNull is { } x) x.Owner = value;
            else _extras = value;
        }
    }

    /// <summary>Something a walk's path may depend on changed in this chain: its table's rule set's generation moves.</summary>
    private void Changed() => Owner?.Changed();

    public bool IsBuiltin => (_flags & BuiltinFlag) != 0;

    /// <summary>ACCEPT or DROP for a built-in chain; null for a user chain.</summary>
    public string? Policy
    {
        get => (_flags & PolicyMask) switch
        {
            AcceptPolicy => Verdicts.Accept,
            DropPolicy => Verdicts.Drop,
            OtherPolicy => ExtrasOrNull!.OtherPolicy,
            _ => null,
        };
        set
        {
            byte kind = value switch
            {
                null => 0,
                Verdicts.Accept => AcceptPolicy,
                Verdicts.Drop => DropPolicy,
                _ => OtherPolicy,
            };
            if (kind == OtherPolicy) Extras.OtherPolicy = value;
            else if (ExtrasOrNull is { } x) x.OtherPolicy = null;
            _flags = (byte)((_flags & ~PolicyMask) | kind);
            Changed();
        }
    }

    /// <summary>
    /// Whether the chain is built in, and its policy as ACCEPT, DROP or another name (kept aside): a byte, not a
    /// bool and a string field (a kube-proxy set has a chain per endpoint, so the object stays small).
    /// </summary>
    private byte _flags;

    private const byte BuiltinFlag = 1, PolicyMask = 6, AcceptPolicy = 2, DropPolicy = 4, OtherPolicy = 6;

    /// <summary>
    /// The policy's counters (built-in chains; a user chain's stay zero, as iptables-save -c shows [0:0]): a copy, zero
    /// when never counted or set. To count a packet, add through <see cref="CountersCell"/>.
    /// </summary>
    public Counters Counters
    {
        get => ExtrasOrNull is { } x ? x.Counters : default;
        set { if ((value.Packets | value.Bytes) != 0 || ExtrasOrNull is not null) Extras.Counters = value; }
    }

    /// <summary>The policy's counters themselves, to add a packet in place (held aside: most chains are user chains).</summary>
    public ref Counters CountersCell => ref Extras.Counters;

    /// <summary>The rules in order. Change them through <see cref="RulesetEditor"/>, which keeps <see cref="Finder"/> and the table's <see cref="Table.Checked"/> true.</summary>
    public RuleList Rules => new(this);

    /// <summary>
    /// The rules (see <see cref="RuleList"/>), held one of two ways. A chain of at most two rules and no spare slots holds
    /// them itself: this field is the first rule (null when there is none) and <see cref="_second"/> the second (a
    /// kube-proxy set has two-rule KUBE-SEP chains, one per endpoint: an array per chain would cost 40 bytes where the
    /// second field costs 8). Otherwise this is a <c>Rule[]</c> gap buffer: <c>[0, _gapStart)</c>, then
    /// <see cref="_gapSize"/> free slots, then the rest, then free slots to the end of the array (a list's spare
    /// capacity); free slots hold null. A third rule, or a capacity set above two, moves the rules into an array.
    /// </summary>
    private object? _store;

    /// <summary>The second rule while the chain holds its rules itself (see <see cref="_store"/>); else null.</summary>
    private Rule? _second;

    private int _ruleCount;
    private int _gapStart;

    /// <summary>At most <see cref="MaxGap"/> (+1 while a removal closes it): a move of the gap clears at most that many slots.</summary>
    private ushort _gapSize;

    /// <summary>
    /// The free slots opened at an edit position. Small, so that moving the gap far costs a shift of the rules between
    /// (a list's insert shifts the whole tail) and not also the clearing of a wide gap; large enough that edits at one
    /// place open it rarely.
    /// </summary>
    private const int MaxGap = 512;

    /// <summary>The most rules a chain holds without an array (see <see cref="_store"/>).</summary>
    private const int InlineRules = 2;

    internal int RuleCount => _ruleCount;

    /// <summary>Slots held: the array's length, or the rule count while the chain holds its rules itself (no spare slots).</summary>
    internal int RuleCapacity => _store is Rule[] a ? a.Length : _ruleCount;

    /// <summary>Rules held (not free slots) in the storage, for tests: a removed rule must not stay reachable.</summary>
    internal int HeldRules()
    {
        if (_store is Rule[] a) return a.Count(r => r is not null);
        return (_store is null ? 0 : 1) + (_second is null ? 0 : 1);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal Rule RuleAt(int index)
    {
        if ((uint)index >= (uint)_ruleCount) ThrowIndex(index);
        if (_store is Rule[] a)
        {
            if (index >= _gapStart) index += _gapSize;
            return a[index];
        }
        return index == 0 ? System.Runtime.CompilerServices.Unsafe.As<Rule>(_store)! : _second!;
    }

    internal void SetRuleAt(int index, Rule rule)
    {
        ArgumentNullException.ThrowIfNull(rule);
        if ((uint)index >= (uint)_ruleCount) ThrowIndex(index);
        if (_store is Rule[] a)
        {
            if (index >= _gapStart) index += _gapSize;
            a[index] = rule;
        }
        else if (index == 0) _store = rule;
        else _second = rule;
        Changed();
    }

    internal void InsertRule(int index, Rule rule)
    {
        ArgumentNullException.ThrowIfNull(rule);
        if ((uint)index > (uint)_ruleCount) ThrowIndex(index);
        Changed();
        if (_store is not Rule[] rules)
        {
            if (_ruleCount < InlineRules)
            {
                if (_ruleCount == 0) _store = rule;
                else if (index == 1) _second = rule;
                else
                {
                    _second = System.Runtime.CompilerServices.Unsafe.As<Rule>(_store);
                    _store = rule;
                }
                _ruleCount++;
                return;
            }
            // A third rule: into an array (a list's first capacity, as Grow makes it), no gap yet.
            rules = ToArray(Math.Max(4, _ruleCount * 2));
        }
        if (_gapSize == 0 || index != _gapStart)
        {
            if (index == _ruleCount && _ruleCount + _gapSize < rules.Length)
            {
                // An append into the spare slots at the end, wherever the gap is (a restore appends 100k rules).
                rules[_ruleCount + _gapSize] = rule;
                _ruleCount++;
                return;
            }
            if (_gapSize == 0) OpenGap(index);
            else MoveGap(index);
            rules = Slots;
        }
        rules[_gapStart++] = rule;
        _gapSize--;
        _ruleCount++;
    }

    internal void RemoveRuleAt(int index)
    {
        if ((uint)index >= (uint)_ruleCount) ThrowIndex(index);
        Changed();
        if (_store is not Rule[] rules)
        {
            if (index == 0) _store = _second;
            _second = null;
            _ruleCount--;
            return;
        }
        if (_gapSize == 0) _gapStart = index + 1; // the rule's own slot becomes the gap
        else if (index == _gapStart) index += _gapSize; // the rule just after the gap: its slot joins it from above
        else MoveGap(index + 1); // the gap just after the rule, which joins it from below
        if (index < _gapStart)
        {
            rules[index] = null!;
            _gapStart--;
        }
        else
        {
            rules[index] = null!;
        }
        _gapSize++;
        _ruleCount--;
        if (_gapSize > MaxGap) CloseGap();
    }

    internal void ClearRules()
    {
        Changed();
        _store = null;
        _second = null;
        _ruleCount = _gapStart = 0;
        _gapSize = 0;
    }

    /// <summary>Sets the slots held: at most <see cref="InlineRules"/> (and no more than the rules) holds them in the chain itself.</summary>
    internal void SetRuleCapacity(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, _ruleCount);
        if (capacity <= InlineRules && capacity == _ruleCount)
        {
            if (_store is not Rule[]) return;
            Rule? first = _ruleCount > 0 ? RuleAt(0) : null, second = _ruleCount > 1 ? RuleAt(1) : null;
            _store = first;
            _second = second;
            _gapStart = _gapSize = 0;
            return;
        }
        if (_store is Rule[] old && capacity == old.Length && _gapSize == 0) return;
        _store = ToArray(capacity);
    }

    /// <summary>The rules in a new array of <paramref name="capacity"/> slots without a gap, held from now on (_store).</summary>
    private Rule[] ToArray(int capacity)
    {
        var a = new Rule[capacity];
        if (_store is Rule[] old)
        {
            Array.Copy(old, 0, a, 0, _gapStart);
            Array.Copy(old, _gapStart + _gapSize, a, _gapStart, _ruleCount - _gapStart);
        }
        else
        {
            if (_ruleCount > 0) a[0] = System.Runtime.CompilerServices.Unsafe.As<Rule>(_store)!;
            if (_ruleCount > 1) a[1] = _second!;
            _second = null;
        }
        _store = a;
        _gapStart = _ruleCount;
        _gapSize = 0;
        return a;
    }

    /// <summary>The array while the rules are held in one (the gap buffer's methods below are called only then).</summary>
    private Rule[] Slots => System.Runtime.CompilerServices.Unsafe.As<Rule[]>(_store!);

    /// <summary>Moves the gap so that it starts at <paramref name="index"/>, shifting the rules between.</summary>
    private void MoveGap(int index)
    {
        int gap = _gapSize;
        if (index < _gapStart)
        {
            // Rules [index, gapStart) move up behind the gap; the slots they leave that the move did not cover are cleared.
            Array.Copy(Slots, index, Slots, index + gap, _gapStart - index);
            Array.Clear(Slots, index, Math.Min(gap, _gapStart - index));
        }
        else if (index > _gapStart)
        {
            // Rules [gapStart + gap, index + gap) move down in front of the gap.
            Array.Copy(Slots, _gapStart + gap, Slots, _gapStart, index - _gapStart);
            int from = Math.Max(index, _gapStart + gap);
            Array.Clear(Slots, from, index + gap - from);
        }
        _gapStart = index;
    }

    /// <summary>Opens a gap at <paramref name="index"/> (there is none): the rules after it shift up, as a list's insert shifts them.</summary>
    private void OpenGap(int index)
    {
        int spare = Slots.Length - _ruleCount;
        if (spare == 0)
        {
            Grow(index);
            return;
        }
        int k = Math.Min(spare, MaxGap);
        Array.Copy(Slots, index, Slots, index + k, _ruleCount - index);
        Array.Clear(Slots, index, Math.Min(k, _ruleCount - index));
        _gapStart = index;
        _gapSize = (ushort)k;
    }

    /// <summary>A larger array (twice the size, as a list grows; the array is full and has no gap), the gap opened at <paramref name="index"/>.</summary>
    private void Grow(int index)
    {
        int capacity = Math.Max(4, Slots.Length * 2);
        var a = new Rule[capacity];
        int k = Math.Min(capacity - _ruleCount, MaxGap);
        Array.Copy(Slots, 0, a, 0, index);
        Array.Copy(Slots, index, a, index + k, _ruleCount - index);
        _store = a;
        _gapStart = index;
        _gapSize = (ushort)k;
    }

    /// <summary>Closes a gap that removals widened: the rules after it shift down (once per <see cref="MaxGap"/> removals at most).</summary>
    private void CloseGap()
    {
        int gap = _gapSize;
        int tail = _ruleCount - _gapStart;
        Array.Copy(Slots, _gapStart + gap, Slots, _gapStart, tail);
        int from = Math.Max(_ruleCount, _gapStart + gap);
        Array.Clear(Slots, from, _ruleCount + gap - from);
        _gapStart = _ruleCount;
        _gapSize = 0;
    }

    private static void ThrowIndex(int index) => throw new ArgumentOutOfRangeException(nameof(index), index, "Index was out of range.");

    /// <summary>
    /// Changes made to <see cref="Rules"/> by <see cref="RulesetEditor"/>, counted: a compiled form remembers the count it
    /// is in step with, and walks a chain whose count moved past it linearly.
    /// </summary>
    public int Edits { get; internal set; }

    /// <summary>Told of each change <see cref="RulesetEditor"/> makes to <see cref="Rules"/> (the compiled form that last indexed the chain); null: none.</summary>
    public IChainEdits? EditListener
    {
        get => ExtrasOrNull?.EditListener;
        set { if (value is not null || ExtrasOrNull is not null) Extras.EditListener = value; }
    }

    /// <summary>The index for <c>-D</c>/<c>-C</c> by rule, built on first use on a long chain; null when none.</summary>
    public RuleFinder? Finder
    {
        get => ExtrasOrNull?.Finder;
        set { if (value is not null || ExtrasOrNull is not null) Extras.Finder = value; }
    }

    /// <summary>
    /// The hooks whose built-in chain reached this chain when its table was last checked whole; meaningful while the
    /// table's <see cref="Table.Checked"/> is set (a chain added since is reached by nothing: no jump to it was checked).
    /// </summary>
    internal HookMask CheckedReach { get; set; }

    /// <summary>Searches by rule made without the index (the first builds none: a CLI command searches once).</summary>
    internal int LinearFinds
    {
        get => ExtrasOrNull?.LinearFinds ?? 0;
        set { if (value != 0 || ExtrasOrNull is not null) Extras.LinearFinds = value; }
    }

    /// <summary>
    /// What most chains of a large rule set never get (a compiled form's listener, the -D/-C index, a built-in chain's
    /// policy counters), made on first use: a <see cref="ChainExtras"/>; until then the chain's <see cref="Owner"/> (a
    /// <see cref="Table"/>) or null. Told apart by exact type (one compare of the method table).
    /// </summary>
    private object? _extras;

    /// <summary>The extras when made, else null.</summary>
    private ChainExtras? ExtrasOrNull
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        get => _extras is { } x && x.GetType() == typeof(ChainExtras) ? System.Runtime.CompilerServices.Unsafe.As<ChainExtras>(x) : null;
    }

    private ChainExtras Extras
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        get => ExtrasOrNull ?? MakeExtras();
    }

    /// <summary>The extras made, taking over the owner the field held.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private ChainExtras MakeExtras()
    {
        var x = new ChainExtras { Owner = System.Runtime.CompilerServices.Unsafe.As<Table>(_extras) };
        _extras = x;
        return x;
    }

    private sealed class ChainExtras
    {
        public Table? Owner;
        public IChainEdits? EditListener;
        public RuleFinder? Finder;
        public int LinearFinds;
        public string? OtherPolicy;
        public Counters Counters;
    }

    public Chain Clone()
    {
        var c = new Chain(Name, IsBuiltin) { Policy = Policy, Counters = Counters };
        c.SetRuleCapacity(_ruleCount);
        foreach (Rule r in Rules) c.Rules.Add(r.Clone());
        return c;
    }
}
